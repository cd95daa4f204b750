-- Unified profile (issue 5): the golden record per one_id, the traits it was chosen from
-- (with source and time), trait history, 疗程卡 balances and the merged timeline.
-- Owned by mecdp.profiles; every table here is derived (rebuilt from the canonical tables
-- and OneID by `mecdp profiles build`, refreshed per person on the stream path).

-- The golden record: one row per active one_id.
CREATE TABLE profiles (
    one_id            VARCHAR PRIMARY KEY,
    name              VARCHAR,            -- as stored in contacts (a token once encrypted)
    name_key          VARCHAR,            -- what name search matches: blind index or name
    gender            VARCHAR,
    birthday          DATE,
    city              VARCHAR,
    home_store        VARCHAR,            -- store with most visits (arrived appointments)
    consultant        VARCHAR,            -- consultant of the latest appointment naming one
    member_level      VARCHAR,            -- from total spend (profiles.yaml levels)
    preferred_channel VARCHAR,            -- channel with most touches
    first_seen        TIMESTAMP,
    last_seen         TIMESTAMP,
    first_order_at    TIMESTAMP,
    last_order_at     TIMESTAMP,
    orders            BIGINT NOT NULL,    -- distinct orders
    visits            BIGINT NOT NULL,    -- arrived appointments
    total_spend_fen   BIGINT NOT NULL,
    avg_spend_fen     BIGINT,             -- per order, rounded to the fen
    records           BIGINT NOT NULL,    -- source records under this person
    built_at          TIMESTAMP NOT NULL
);

-- The chosen value of each survivorship trait, with where it came from.
CREATE TABLE profile_traits (
    one_id       VARCHAR NOT NULL,
    trait        VARCHAR NOT NULL,        -- name, gender, birthday, city
    value        VARCHAR NOT NULL,        -- as text (dates ISO; a token for encrypted names)
    value_key    VARCHAR NOT NULL,        -- what values compare by (a name's blind index)
    rule         VARCHAR NOT NULL,        -- source_priority, most_recent, most_frequent
    source_id    VARCHAR NOT NULL,
    record_id    VARCHAR NOT NULL,
    observed_at  TIMESTAMP,
    candidates   BIGINT NOT NULL,         -- records that had a value for the trait
    PRIMARY KEY (one_id, trait)
);

-- Every change of a chosen trait value (append-only).
CREATE TABLE profile_trait_history (
    one_id       VARCHAR NOT NULL,
    trait        VARCHAR NOT NULL,
    value        VARCHAR,                 -- NULL: the trait lost its value
    value_key    VARCHAR,
    rule         VARCHAR,
    source_id    VARCHAR,
    record_id    VARCHAR,
    observed_at  TIMESTAMP,
    changed_at   TIMESTAMP NOT NULL
);
CREATE INDEX profile_trait_history_one_id ON profile_trait_history (one_id);

-- 疗程卡 balances: sessions bought on course cards minus treatments of the item after purchase.
CREATE TABLE profile_course_cards (
    one_id             VARCHAR NOT NULL,
    item_code          VARCHAR NOT NULL,
    item_name          VARCHAR,
    sessions_bought    BIGINT NOT NULL,
    sessions_used      BIGINT NOT NULL,
    sessions_left      BIGINT NOT NULL,
    first_purchase_at  TIMESTAMP NOT NULL,
    last_purchase_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (one_id, item_code)
);

-- A person's identifiers (those OneID links to the person; ambiguous ones are left out), with
-- how many records carry each and when they were seen.
CREATE TABLE profile_identifiers (
    one_id        VARCHAR NOT NULL,
    id_type       VARCHAR NOT NULL,
    id_value      VARCHAR NOT NULL,       -- as stored (a blind index for phone/email once encrypted)
    id_value_enc  VARCHAR,                -- the encrypted value when id_value is a blind index
    records       BIGINT NOT NULL,
    first_seen    TIMESTAMP,
    last_seen     TIMESTAMP
);
CREATE INDEX profile_identifiers_one_id ON profile_identifiers (one_id);
-- lookups by identifier: DuckDB uses an ART index for a single-column equality only
CREATE INDEX profile_identifiers_value ON profile_identifiers (id_value);

-- The merged timeline: one row per thing that happened to a person, across every channel.
CREATE TABLE profile_timeline (
    one_id       VARCHAR NOT NULL,
    occurred_at  TIMESTAMP NOT NULL,
    kind         VARCHAR NOT NULL,        -- event, interaction, appointment, order, treatment,
                                          -- feedback, ticket
    type         VARCHAR,                 -- event name, interaction type, status, order type
    channel      VARCHAR,
    store_code   VARCHAR,
    title        VARCHAR,                 -- item, event or topic
    amount_fen   BIGINT,
    score        INTEGER,                 -- feedback score (NPS 0-10 or rating)
    sensitive    BOOLEAN NOT NULL,        -- medical data (PIPL Art. 28): treatments
    record_id    VARCHAR NOT NULL,
    source_id    VARCHAR NOT NULL
);
CREATE INDEX profile_traits_one_id ON profile_traits (one_id);
CREATE INDEX profile_timeline_one_id ON profile_timeline (one_id);
CREATE INDEX profile_course_cards_one_id ON profile_course_cards (one_id);
