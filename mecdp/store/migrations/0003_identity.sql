-- OneID (issue 4): the identity graph, one_id assignment, redirects, merge history and the
-- review queue. Owned by mecdp.identity; other areas read these through its service.
--
-- The graph is bipartite: a node is an identifier (id_type, id_value) or a virtual match node
-- (id_type '~match', id_value = pair id); an edge links a source record to a node. Two
-- identifiers on one record are linked through that record (the evidence).

-- The edge log: every edge OneID has seen, with what became of it on the last rebuild.
CREATE TABLE identity_links (
    record_id    VARCHAR NOT NULL,
    id_type      VARCHAR NOT NULL,
    id_value     VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,        -- record (from record_identifiers), match, manual
    source_id    VARCHAR,
    rule         VARCHAR,                 -- what made the edge: identifier type, 'splink', 'review'
    weight       DOUBLE,                  -- match weight (probabilistic edges)
    status       VARCHAR NOT NULL,        -- linked, ambiguous (household), blocklisted, removed
    reason       VARCHAR,                 -- why not linked
    observed_at  TIMESTAMP,
    updated_at   TIMESTAMP NOT NULL
    -- one row per (record_id, id_type, id_value); no key constraint so a rebuild writes it
    -- in bulk (the service deletes before it inserts)
);

-- Persons: one row per one_id ever issued (merged ones keep their row, status 'merged').
CREATE SEQUENCE identity_person_seq START 1;
CREATE TABLE identity_persons (
    one_id      VARCHAR PRIMARY KEY,
    seq         BIGINT NOT NULL,          -- issue order: the smaller, the older
    status      VARCHAR NOT NULL,         -- active, merged
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

-- identifier -> one_id (ambiguous and blocklisted identifiers have no row).
CREATE TABLE identity_oneid (
    id_type   VARCHAR NOT NULL,
    id_value  VARCHAR NOT NULL,
    one_id    VARCHAR NOT NULL,
    PRIMARY KEY (id_type, id_value)
);

-- record -> one_id: how events and facts are found under a person without being rewritten.
CREATE TABLE identity_records (
    record_id  VARCHAR PRIMARY KEY,
    one_id     VARCHAR NOT NULL
);

-- A merged one_id points to its survivor (kept pointing at the final survivor).
CREATE TABLE identity_redirects (
    from_one_id    VARCHAR PRIMARY KEY,
    to_one_id      VARCHAR NOT NULL,
    reason         VARCHAR NOT NULL,
    redirected_at  TIMESTAMP NOT NULL
);

-- Identifiers shared by several persons that OneID refuses to link on (家庭共用手机号 ...).
CREATE TABLE identity_ambiguous (
    id_type      VARCHAR NOT NULL,
    id_value     VARCHAR NOT NULL,
    reason       VARCHAR NOT NULL,
    detected_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (id_type, id_value)
);

-- Merge history: every merge, split, link and unlink with its evidence.
CREATE SEQUENCE identity_event_seq START 1;
CREATE TABLE identity_events (
    event_seq     BIGINT PRIMARY KEY,
    occurred_at   TIMESTAMP NOT NULL,
    action        VARCHAR NOT NULL,       -- create, merge, split, remove_edge, remove_identifier,
                                          -- blocklist, review_approve, review_reject
    one_id        VARCHAR,                -- the survivor / the person acted on
    other_one_id  VARCHAR,                -- the merged-away or split-off person
    rule          VARCHAR,                -- identifier type, 'splink', 'review', 'manual'
    weight        DOUBLE,
    evidence      VARCHAR NOT NULL,       -- JSON: shared identifier + record, or compared fields
    actor         VARCHAR NOT NULL
);

-- Probabilistic pairs (records that share no identifier) and the review queue.
CREATE TABLE identity_match_pairs (
    pair_id       VARCHAR PRIMARY KEY,    -- sha of the two record ids (ordered)
    record_id_l   VARCHAR NOT NULL,
    record_id_r   VARCHAR NOT NULL,
    one_id_l      VARCHAR,
    one_id_r      VARCHAR,
    weight        DOUBLE NOT NULL,
    probability   DOUBLE NOT NULL,
    fields        VARCHAR NOT NULL,       -- JSON: compared fields and their levels
    status        VARCHAR NOT NULL,       -- auto, pending, approved, rejected, blocked
    reason        VARCHAR,
    decided_by    VARCHAR,
    decided_at    TIMESTAMP,
    created_at    TIMESTAMP NOT NULL
);

-- Manual edits of the graph, replayed on every rebuild (nothing is deleted from the inputs).
CREATE TABLE identity_overrides (
    override_id  VARCHAR PRIMARY KEY,
    action       VARCHAR NOT NULL,        -- remove_edge, remove_identifier, blocklist
    record_id    VARCHAR,                 -- remove_edge only
    id_type      VARCHAR NOT NULL,
    id_value     VARCHAR NOT NULL,
    reason       VARCHAR,
    actor        VARCHAR NOT NULL,
    created_at   TIMESTAMP NOT NULL
);
