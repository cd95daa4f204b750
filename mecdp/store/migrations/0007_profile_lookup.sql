-- Profile lookup (issue 5 speed floor): one precomputed document per person and the
-- single-column index the 360° view reads the consent ledger by. DuckDB serves a point read
-- from an ART index only for an equality on one indexed column.
-- Owned by mecdp.profiles (the documents); the consents index serves a read of the privacy
-- area's ledger.

-- The stored part of a person's 360° view as JSON (values as stored: tokens stay tokens;
-- masking happens per caller on the way out). Written by the full build and by
-- refresh_profiles in the same transaction as the profile tables it is made from.
-- One row per one_id (the build writes them); a plain index rather than a primary key so
-- that a full build can drop it and build it once after writing every row.
CREATE TABLE profile_documents (
    one_id    VARCHAR NOT NULL,
    document  VARCHAR NOT NULL,
    built_at  TIMESTAMP NOT NULL
);
CREATE INDEX profile_documents_one_id ON profile_documents (one_id);

-- a member's consent ledger rows (the view shows the current state per purpose and channel)
CREATE INDEX consents_member_ref ON consents (member_ref);
-- (a member's tags, tag history and treatment due dates are indexed by one_id in 0006)
