-- Privacy core (issue 3, phase A): users, sessions, API keys, login throttling,
-- per-member data keys (crypto-shredding), the consent ledger and the audit chain.
-- Owned by mecdp.privacy; other areas read these through mecdp.privacy services only.

-- Console/API users. Passwords are argon2id hashes; consultants carry their store.
CREATE TABLE users (
    username       VARCHAR PRIMARY KEY,
    role           VARCHAR NOT NULL,      -- admin, marketer, consultant, analyst, compliance
    store_code     VARCHAR,               -- consultants: the store whose members they serve
    password_hash  VARCHAR NOT NULL,      -- argon2id, never the password
    active         BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL
);

-- Server-side sessions: the signed token names a session; logout/revocation ends it here.
CREATE TABLE sessions (
    session_id   VARCHAR PRIMARY KEY,
    username     VARCHAR NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP
);

-- Server-to-server API keys: shown once, only a SHA-256 of the secret is kept.
CREATE TABLE api_keys (
    key_id       VARCHAR PRIMARY KEY,
    name         VARCHAR NOT NULL,
    role         VARCHAR NOT NULL,
    store_code   VARCHAR,
    secret_sha256 VARCHAR NOT NULL,
    created_by   VARCHAR NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP
);

-- Failed logins per user name and client address (throttling window).
CREATE TABLE login_failures (
    username   VARCHAR NOT NULL,
    client_ip  VARCHAR NOT NULL,
    failed_at  TIMESTAMP NOT NULL
);

-- One data key per member, wrapped (AES-GCM) by the workspace key ring.
-- Deleting a member's row makes every value encrypted under it unreadable (crypto-shredding).
CREATE TABLE member_keys (
    key_id       VARCHAR PRIMARY KEY,
    member_ref   VARCHAR NOT NULL UNIQUE,
    wrapped_key  VARCHAR NOT NULL,
    created_at   TIMESTAMP NOT NULL
);

-- The consent ledger (PIPL Art. 14-16, 23, 24, 29): append-only, latest event wins.
CREATE SEQUENCE consents_seq START 1;
CREATE TABLE consents (
    consent_id      VARCHAR PRIMARY KEY,
    seq             BIGINT NOT NULL DEFAULT nextval('consents_seq'),
    member_ref      VARCHAR NOT NULL,     -- 'one_id:<id>' or '<id_type>:bi:<blind index>'
    purpose         VARCHAR NOT NULL,
    channel         VARCHAR NOT NULL,     -- contact channel covered, '*' for all
    status          VARCHAR NOT NULL,     -- granted, withdrawn
    notice_version  VARCHAR NOT NULL,
    notice_sha256   VARCHAR NOT NULL,
    source          VARCHAR NOT NULL,     -- where it was captured: mini_program, in_store_form, api, ...
    evidence        VARCHAR,              -- reference to the proof (form id, signature file, event id)
    occurred_at     TIMESTAMP NOT NULL,   -- when the member gave or withdrew it (UTC)
    recorded_at     TIMESTAMP NOT NULL,
    recorded_by     VARCHAR NOT NULL
);

-- The audit chain: append-only; row_hash = sha256(canonical JSON of the row + prev_hash).
CREATE TABLE audit_log (
    seq          BIGINT PRIMARY KEY,
    logged_at    TIMESTAMP NOT NULL,
    actor        VARCHAR NOT NULL,        -- user name, 'api_key:<id>', 'admin_token', 'system'
    actor_role   VARCHAR,
    action       VARCHAR NOT NULL,        -- stable event name, e.g. personal_data.read_unmasked
    target       VARCHAR,                 -- what was touched: table/route/object id
    member_refs  VARCHAR NOT NULL,        -- JSON list of member references (never contact values)
    purpose      VARCHAR,
    outcome      VARCHAR NOT NULL,        -- ok, denied, failed
    detail       VARCHAR NOT NULL,        -- JSON object, no secrets and no personal data
    prev_hash    VARCHAR NOT NULL,
    row_hash     VARCHAR NOT NULL
);
