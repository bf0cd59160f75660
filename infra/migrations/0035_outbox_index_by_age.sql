-- The outbox's second index keys on (group_id, created_at) instead of (group_id, id) (#18).
-- Every batch's transaction deletes the rows its predecessor published by id (`_FINISH` in
-- marketplace/runtime/outbox.py). Between vacuums the outbox holds thousands of dead rows and
-- its statistics a few live ones; the planner then served `id = ANY(...)` from this index, id
-- being its second column, and read the whole index, dead entries and all: 170-320 buffer
-- hits per batch against about 7 through the primary key (a churn of 4 groups x 6 partitions
-- at 300 batches/s, 90 s). Without id in it, only the primary key can answer by id. The
-- sweeper's look-up (a group's rows older than an age, oldest first) and the backlog count
-- still have an index by group.
DROP INDEX outbox_by_group;
CREATE INDEX outbox_by_group ON outbox (group_id, created_at);
