-- The exactly-once consumer runtime (ARCHITECTURE.md decision 4).

-- The next offset to process, per consumer group and partition. It is written in the same
-- transaction as the consumer's effects, so effects and position can never disagree.
CREATE TABLE consumer_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL CHECK (partition >= 0),
    next_offset bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Events a consumer emitted in a committed transaction and has not yet seen acknowledged by
-- Kafka. Rows are deleted once published; a crash leaves them for the sweeper to republish.
CREATE TABLE outbox (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    key         bytea,
    value       bytea       NOT NULL,
    -- [[name, value], ...]; header values are UTF-8 text (CloudEvents attributes).
    headers     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_by_group ON outbox (group_id, id);
