-- Privacy core, phase B (issue 3): personal data encrypted at rest in the pipeline tables,
-- data-subject requests, corrections, restricted medical records, retention.
-- Owned by mecdp.privacy (vault, dsr, retention).
--
-- record_identifiers: for id_type phone and email, id_value holds the keyed blind index
-- (HMAC-SHA256 hex, deterministic: joins, dedupe and the identity graph work on it) and
-- id_value_enc the AES-GCM token of the normalised value (e1:<key id>:...). id_card_hash
-- stays a keyed hash; other identifier types are pseudonymous platform ids, kept plain.
ALTER TABLE record_identifiers ADD COLUMN id_value_enc VARCHAR;

-- contacts.name holds an AES-GCM token; name_bidx the blind index of the normalised name.
ALTER TABLE contacts ADD COLUMN name_bidx VARCHAR;

-- Data-subject requests (PIPL Art. 44-47): the queue, with status and due date.
CREATE TABLE dsr_requests (
    request_id    VARCHAR PRIMARY KEY,
    kind          VARCHAR NOT NULL,       -- access, correction, deletion
    status        VARCHAR NOT NULL,       -- received, in_progress, completed, rejected
    member_ref    VARCHAR NOT NULL,       -- '<id_type>:bi:<blind index>' or 'one_id:<id>'
    subject       VARCHAR NOT NULL,       -- identifiers the subject gave, encrypted (e1: token)
    received_at   TIMESTAMP NOT NULL,
    due_on        DATE NOT NULL,          -- 15 working days (Mon-Fri) after received_at
    updated_at    TIMESTAMP NOT NULL,
    completed_at  TIMESTAMP,
    handled_by    VARCHAR,
    note          VARCHAR,                -- reason of a rejection; never personal data
    result        VARCHAR                 -- JSON summary (counts per table), no personal data
);

-- Corrections of profile fields (Art. 46), with history: old and new values encrypted.
CREATE TABLE profile_corrections (
    correction_id  VARCHAR PRIMARY KEY,
    request_id     VARCHAR,
    record_id      VARCHAR NOT NULL,
    field          VARCHAR NOT NULL,
    old_value      VARCHAR,               -- e1: token
    new_value      VARCHAR,               -- e1: token
    corrected_by   VARCHAR NOT NULL,
    corrected_at   TIMESTAMP NOT NULL
);

-- Records the law requires to be kept after a deletion request (medical records, PIPL Art. 47
-- with the medical-record retention rules): moved out of every queried table; the row is an
-- encrypted JSON document readable only by compliance through an audited route.
CREATE TABLE restricted_records (
    record_id      VARCHAR NOT NULL,
    record_kind    VARCHAR NOT NULL,      -- treatments
    request_id     VARCHAR NOT NULL,
    document       VARCHAR NOT NULL,      -- e1: token of the record as JSON
    restricted_at  TIMESTAMP NOT NULL,
    keep_until     DATE
);
