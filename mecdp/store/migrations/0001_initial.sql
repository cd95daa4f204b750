-- The canonical tables of the foundation (DESIGN.md, domain model).
-- Times are UTC TIMESTAMP; money is BIGINT fen (never float).
-- Every record row has a deterministic record_id (source + natural key or row hash),
-- so re-ingesting the same data changes nothing. Bulk tables carry no index: writers
-- anti-join on record_id (one hash join per file), which costs far less than maintaining
-- an ART index on every insert; raw_events and events keep their keys for the stream path.

CREATE TABLE sources (
    source_id   VARCHAR PRIMARY KEY,      -- slug, e.g. 'pos_shanghai'
    name        VARCHAR NOT NULL,
    channel     VARCHAR NOT NULL,         -- see clean.codes.CHANNELS
    kind        VARCHAR NOT NULL,         -- 'events' or a record kind (orders, appointments, ...)
    mapping     VARCHAR,                  -- shipped mapping name or a workspace mapping file
    write_key   VARCHAR NOT NULL UNIQUE,  -- collection only: can write, can read nothing
    created_at  TIMESTAMP NOT NULL
);

-- The raw log: one received message, verbatim, in arrival order.
CREATE SEQUENCE raw_events_seq START 1;
CREATE TABLE raw_events (
    seq          BIGINT NOT NULL,
    source_id    VARCHAR NOT NULL,
    message_id   VARCHAR NOT NULL,
    received_at  TIMESTAMP NOT NULL,
    event_time   TIMESTAMP,               -- skew-corrected (receivedAt - (sentAt - originalTimestamp))
    payload      VARCHAR NOT NULL,        -- the event JSON as received
    PRIMARY KEY (source_id, message_id)
);

-- Immutable copies of imported files (workspace/raw/files/<sha256>) are the raw log of bulk data.
CREATE TABLE file_imports (
    import_id    VARCHAR PRIMARY KEY,     -- sha256 of the file bytes + source
    source_id    VARCHAR NOT NULL,
    record_kind  VARCHAR NOT NULL,
    file_name    VARCHAR NOT NULL,
    file_sha256  VARCHAR NOT NULL,
    file_format  VARCHAR NOT NULL,        -- csv, xlsx, jsonl, parquet
    encoding     VARCHAR,
    mapping      VARCHAR NOT NULL,
    rows_read    BIGINT NOT NULL,
    accepted     BIGINT NOT NULL,
    quarantined  BIGINT NOT NULL,
    duplicates   BIGINT NOT NULL,
    imported_at  TIMESTAMP NOT NULL
);

-- Per source and batch: what came in and what became of it (feeds `mecdp quality`).
CREATE TABLE ingest_log (
    source_id    VARCHAR NOT NULL,
    origin       VARCHAR NOT NULL,        -- http, file, stream
    ref          VARCHAR,                 -- file import id or first seq of a commit
    received     BIGINT NOT NULL,
    accepted     BIGINT NOT NULL,
    quarantined  BIGINT NOT NULL,
    duplicates   BIGINT NOT NULL,
    logged_at    TIMESTAMP NOT NULL
);

CREATE SEQUENCE quarantine_seq START 1;
CREATE TABLE quarantine (
    quarantine_id  BIGINT NOT NULL DEFAULT nextval('quarantine_seq'),
    source_id      VARCHAR,
    origin         VARCHAR NOT NULL,      -- http, file, stream
    record_kind    VARCHAR,
    ref            VARCHAR,               -- file:row or message id
    field          VARCHAR,
    value          VARCHAR,
    rule           VARCHAR NOT NULL,      -- machine name of the failed rule
    reason         VARCHAR NOT NULL,      -- human sentence naming field, value and rule
    payload        VARCHAR,               -- the original record (JSON)
    quarantined_at TIMESTAMP NOT NULL
);

-- The stream processor's durable position in the raw log.
CREATE TABLE stream_checkpoints (
    name        VARCHAR PRIMARY KEY,
    seq         BIGINT NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

-- Normalised behavioural events (identify/track/page/screen/group/alias).
CREATE TABLE events (
    record_id     VARCHAR PRIMARY KEY,    -- source_id ':' message_id
    source_id     VARCHAR NOT NULL,
    seq           BIGINT,
    message_id    VARCHAR NOT NULL,
    type          VARCHAR NOT NULL,
    event         VARCHAR,                -- track name / page or screen name
    user_id       VARCHAR,
    anonymous_id  VARCHAR,
    previous_id   VARCHAR,                -- alias
    group_id      VARCHAR,
    channel       VARCHAR,
    occurred_at   TIMESTAMP NOT NULL,
    received_at   TIMESTAMP NOT NULL,
    properties    VARCHAR,                -- JSON
    traits        VARCHAR,                -- JSON
    context       VARCHAR                 -- JSON
);

-- A person as one source record describes them (an order's buyer, a lead, a member row).
-- Identity resolution and the golden record read these; one row per record with person data.
CREATE TABLE contacts (
    record_id    VARCHAR NOT NULL,
    record_kind  VARCHAR NOT NULL,
    source_id    VARCHAR NOT NULL,
    name         VARCHAR,
    gender       VARCHAR,                 -- 'F', 'M' or NULL
    birthday     DATE,
    city         VARCHAR,
    store_code   VARCHAR,
    observed_at  TIMESTAMP
);

-- Every identifier a record carries (evidence for OneID). Values are normalised;
-- id-card numbers appear only as keyed hashes.
CREATE TABLE record_identifiers (
    record_id    VARCHAR NOT NULL,
    record_kind  VARCHAR NOT NULL,
    source_id    VARCHAR NOT NULL,
    id_type      VARCHAR NOT NULL,        -- see clean.codes.IDENTIFIER_TYPES
    id_value     VARCHAR NOT NULL,
    observed_at  TIMESTAMP
);

CREATE TABLE stores (
    store_code  VARCHAR PRIMARY KEY,
    name        VARCHAR NOT NULL,
    city        VARCHAR NOT NULL,
    opened_on   DATE
);

CREATE TABLE catalog (
    item_code          VARCHAR PRIMARY KEY,
    name               VARCHAR NOT NULL,
    category           VARCHAR NOT NULL,  -- 注射 光电 手术 皮肤管理 产品
    price_fen          BIGINT NOT NULL,
    price_band         VARCHAR,           -- entry, mid, high, luxury
    luxury             BOOLEAN NOT NULL DEFAULT FALSE,
    repeat_cycle_days  INTEGER            -- typical days until the next treatment
);

CREATE TABLE orders (
    record_id    VARCHAR NOT NULL,
    source_id    VARCHAR NOT NULL,
    order_no     VARCHAR NOT NULL,
    customer_no  VARCHAR,                 -- order-system customer id
    store_code   VARCHAR,
    channel      VARCHAR,
    ordered_at   TIMESTAMP NOT NULL,
    item_code    VARCHAR,
    item_name    VARCHAR,
    category     VARCHAR,
    quantity     INTEGER,
    amount_fen   BIGINT NOT NULL,
    paid_fen     BIGINT,
    promo        BOOLEAN,
    order_type   VARCHAR,                 -- normal, course_card (疗程卡), stored_value (储值卡)
    sessions     INTEGER,                 -- sessions bought on a course card
    status       VARCHAR,
    ingested_at  TIMESTAMP NOT NULL
);

CREATE TABLE appointments (
    record_id      VARCHAR NOT NULL,
    source_id      VARCHAR NOT NULL,
    appointment_no VARCHAR NOT NULL,
    store_code     VARCHAR,
    channel        VARCHAR,
    item_code      VARCHAR,
    item_name      VARCHAR,
    consultant     VARCHAR,
    scheduled_at   TIMESTAMP NOT NULL,
    arrived_at     TIMESTAMP,
    status         VARCHAR NOT NULL,      -- booked, arrived, no_show, cancelled
    ingested_at    TIMESTAMP NOT NULL
);

-- Sensitive medical data (PIPL Art. 28).
CREATE TABLE treatments (
    record_id     VARCHAR NOT NULL,
    source_id     VARCHAR NOT NULL,
    treatment_no  VARCHAR NOT NULL,
    store_code    VARCHAR,
    item_code     VARCHAR,
    item_name     VARCHAR,
    category      VARCHAR,
    doctor        VARCHAR,
    units         DECIMAL(10, 2),
    performed_at  TIMESTAMP NOT NULL,
    ingested_at   TIMESTAMP NOT NULL
);

CREATE TABLE interactions (
    record_id       VARCHAR NOT NULL,
    source_id       VARCHAR NOT NULL,
    interaction_no  VARCHAR NOT NULL,
    channel         VARCHAR NOT NULL,
    type            VARCHAR NOT NULL,     -- like, comment, share, follow, dm, lead_form, call, chat, ticket, ...
    content         VARCHAR,
    topic           VARCHAR,
    agent           VARCHAR,
    occurred_at     TIMESTAMP NOT NULL,
    ingested_at     TIMESTAMP NOT NULL
);

CREATE TABLE feedback (
    record_id     VARCHAR NOT NULL,
    source_id     VARCHAR NOT NULL,
    response_no   VARCHAR NOT NULL,
    channel       VARCHAR,
    store_code    VARCHAR,
    item_code     VARCHAR,
    survey        VARCHAR,
    score         INTEGER,                -- NPS 0-10 or rating
    text          VARCHAR,
    submitted_at  TIMESTAMP NOT NULL,
    ingested_at   TIMESTAMP NOT NULL
);
