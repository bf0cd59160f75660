-- The cut-over of `marketplace rebuild rekey` (#17 item 2) gets a table of its own: where a
-- matcher group's books moved to the material-family key of a topic, at what time, at which of
-- the group's offsets (partition -> next offset, as a JSON object), and the move's figures.
-- `marketplace audit replay` makes the same move at the same offsets from this record; it is
-- written once, in the move's transaction, and never changed (the services' role may read and
-- insert only: APP_PRIVILEGES in marketplace/db.py).
CREATE TABLE matcher_cutovers (
    group_id text        NOT NULL,
    topic    text        NOT NULL,
    at       timestamptz NOT NULL,
    offsets  jsonb       NOT NULL CHECK (jsonb_typeof(offsets) = 'object'),
    -- What the move did (listings moved, proposals cancelled and made, ...); NULL for a
    -- cut-over recorded before this table existed, whose figures were printed only.
    summary  jsonb       CHECK (summary IS NULL OR jsonb_typeof(summary) = 'object'),
    PRIMARY KEY (group_id, topic)
);

-- Until now the record was kept in `matcher_partitions` under the topic name `<topic>@cut-over`:
-- a row per partition whose `seq` is the offset, and partition -1 whose `seq` is the time in
-- microseconds since 1970. Those records move here (whole seconds and the remaining
-- microseconds added apart, so the time stays exact), and their rows go.
INSERT INTO matcher_cutovers (group_id, topic, at, offsets)
SELECT group_id,
       left(topic, length(topic) - length('@cut-over')),
       timestamptz 'epoch'
           + (max(seq) FILTER (WHERE partition = -1) / 1000000) * interval '1 second'
           + (max(seq) FILTER (WHERE partition = -1) % 1000000) * interval '1 microsecond',
       COALESCE(jsonb_object_agg(partition::text, seq) FILTER (WHERE partition >= 0), '{}')
FROM matcher_partitions
WHERE right(topic, length('@cut-over')) = '@cut-over'
GROUP BY group_id, topic
HAVING count(*) FILTER (WHERE partition = -1) = 1;

DELETE FROM matcher_partitions p
USING matcher_cutovers c
WHERE p.group_id = c.group_id AND p.topic = c.topic || '@cut-over';
