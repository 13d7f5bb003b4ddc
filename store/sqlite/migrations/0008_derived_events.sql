-- The events of a short run that say nothing its row does not (it started,
-- each node started and completed once, it completed) are no longer
-- stored: its events column holds the line "derived" and ListEvents
-- derives them from the row (store/sqlite/derived.go). No table changes;
-- the version keeps an older kgw, which would read that line as a
-- malformed event, from opening the database (checkNotNewer).
SELECT 1;
