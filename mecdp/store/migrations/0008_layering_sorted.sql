-- customer_tags and customer_tag_history are read by member through their sort order instead
-- of ART indexes. A full compute run rewrites customer_tags sorted by one_id and appends each
-- run's tag changes to customer_tag_history sorted by one_id, so a point read skips every
-- row group whose min/max excludes the member. At a million members (ten million tag rows)
-- keeping ART indexes on them cost more than the rest of the run: building them, and
-- deleting the changed rows from them at commit.
DROP INDEX customer_tags_one_id;
DROP INDEX customer_tag_history_one_id;
