-- Member layering (issue 6): tag definitions, member tags with history, value and behaviour
-- scores, treatment-cycle due dates and the record of each compute run.
-- Owned by mecdp.compute; every table but tag_definitions is derived (recomputed by
-- `mecdp compute`, the scheduler in `serve`, and per person for event-refresh tags).

-- A tag definition as data. Shipped ones come from mecdp/compute/tags.yaml, a workspace adds
-- or overrides them in <workspace>/tags/*.yaml, the API saves them here (origin 'api').
CREATE TABLE tag_definitions (
    tag_id       VARCHAR PRIMARY KEY,       -- stable key, e.g. new_customer
    name_zh      VARCHAR NOT NULL,
    name_en      VARCHAR NOT NULL,
    description  VARCHAR,
    owner        VARCHAR,
    category     VARCHAR NOT NULL,          -- value, lifecycle, purchase, interaction, preference, treatment, ...
    value_type   VARCHAR NOT NULL,          -- boolean, enum, number
    refresh      VARCHAR NOT NULL,          -- event, scheduled, manual
    rule         JSON NOT NULL,             -- the rule as written (kind + its fields)
    version      INTEGER NOT NULL,          -- bumped whenever the rule changes
    origin       VARCHAR NOT NULL,          -- shipped, workspace, api, system
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at   TIMESTAMP NOT NULL,
    updated_by   VARCHAR
);

-- A member's current tag values. Boolean tags hold a row only while true ('true');
-- enum tags hold the member's value; number tags the number as text.
CREATE TABLE customer_tags (
    one_id        VARCHAR NOT NULL,
    tag_id        VARCHAR NOT NULL,
    value         VARCHAR NOT NULL,
    rule_version  INTEGER NOT NULL,
    computed_at   TIMESTAMP NOT NULL     -- when the member got this value (a run applies only changes)
);
-- One row per (one_id, tag_id), kept by the compute run; no composite key (DuckDB's ART index
-- serves single-column lookups only). Reads by tag scan: an index on a column with a few
-- dozen values would cost far more to keep than it saves.
CREATE INDEX customer_tags_one_id ON customer_tags (one_id);

-- Every change of a member's tag value (append-only): gained, lost, changed.
-- "who became 沉睡 this month": change = 'gained' AND tag_id = 'dormant' AND changed_at >= ...
CREATE TABLE customer_tag_history (
    one_id          VARCHAR NOT NULL,
    tag_id          VARCHAR NOT NULL,
    change          VARCHAR NOT NULL,       -- gained, lost, changed
    value           VARCHAR,                -- NULL when lost
    previous_value  VARCHAR,                -- NULL when gained
    rule_version    INTEGER NOT NULL,
    changed_at      TIMESTAMP NOT NULL,
    run_id          VARCHAR NOT NULL
);
CREATE INDEX customer_tag_history_one_id ON customer_tag_history (one_id);

-- Value and behaviour scores per member, with the inputs that explain them.
CREATE TABLE scores (
    one_id                VARCHAR NOT NULL,   -- one row per person (indexed below)
    as_of                 TIMESTAMP NOT NULL,
    -- RFM
    recency_days          INTEGER,          -- days since the last paid order (NULL: none)
    frequency             BIGINT NOT NULL,  -- paid orders in the RFM window
    monetary_fen          BIGINT NOT NULL,  -- paid spend in the RFM window
    r_score               INTEGER,          -- 1..5
    f_score               INTEGER,
    m_score               INTEGER,
    rfm_segment           VARCHAR,          -- 重要价值 ... 一般挽留 (stored as the English key)
    value_tier            VARCHAR,          -- high_value, potential, dormant
    -- CLV (BG/NBD + Gamma-Gamma)
    clv_frequency         BIGINT,           -- repeat purchase days (x)
    clv_recency_days      DOUBLE,           -- t_x
    clv_age_days          DOUBLE,           -- T
    p_alive               DOUBLE,
    expected_purchases_90   DOUBLE,
    expected_purchases_180  DOUBLE,
    expected_purchases_365  DOUBLE,
    expected_avg_spend_fen  DOUBLE,
    expected_value_90_fen   DOUBLE,
    expected_value_180_fen  DOUBLE,
    expected_value_365_fen  DOUBLE,
    clv_12m_fen           DOUBLE,
    -- behaviour
    purchase_tier         VARCHAR,          -- vip, promotion_driven, one_time, course, regular, none
    interaction_tier      VARCHAR,          -- high, low, none
    interaction_channels  INTEGER,          -- breadth: distinct channels in the window
    interactions_90d      BIGINT,
    preferred_category    VARCHAR,          -- 注射 光电 手术 皮肤管理 (by spend, then interest)
    run_id                VARCHAR NOT NULL
);
CREATE INDEX scores_one_id ON scores (one_id);

-- Each member's next-due date per treatment item (from the catalog's repeat cycle).
CREATE TABLE treatment_due (
    one_id              VARCHAR NOT NULL,
    item_code           VARCHAR NOT NULL,
    item_name           VARCHAR,
    category            VARCHAR,
    last_performed_at   TIMESTAMP NOT NULL,
    cycle_days          INTEGER NOT NULL,
    due_on              DATE NOT NULL,
    status              VARCHAR NOT NULL,   -- upcoming (due within the window), overdue, not_due
    run_id              VARCHAR NOT NULL   -- one row per (one_id, item_code)
);
CREATE INDEX treatment_due_one_id ON treatment_due (one_id);

-- One row per compute run: what ran, as of when, and the parameters it used (RFM cut-offs,
-- fitted CLV parameters) so every score is explainable afterwards.
CREATE TABLE compute_runs (
    run_id        VARCHAR PRIMARY KEY,
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    as_of         TIMESTAMP NOT NULL,
    scope         VARCHAR NOT NULL,         -- all, tags, person
    engine        VARCHAR NOT NULL,         -- duckdb, spark
    members       BIGINT,
    parameters    JSON,                     -- {"rfm": {...cut-offs}, "clv": {...}, "tags": {...versions}}
    status        VARCHAR NOT NULL          -- running, done, failed
);
