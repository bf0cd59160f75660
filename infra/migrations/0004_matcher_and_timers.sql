-- The matcher's book, per partition, and the timers the scheduler fires.

CREATE TABLE matcher_partitions (
    group_id  text    NOT NULL,
    topic     text    NOT NULL,
    partition integer NOT NULL,
    seq       bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (group_id, topic, partition)
);

-- One row per open listing or open proposal; `body` is the core's dataclass as JSON.
CREATE TABLE matcher_items (
    group_id  text    NOT NULL,
    topic     text    NOT NULL,
    partition integer NOT NULL,
    item_id   text    NOT NULL,
    kind      text    NOT NULL CHECK (kind IN ('listing', 'proposal')),
    body      jsonb   NOT NULL,
    PRIMARY KEY (group_id, topic, partition, item_id)
);

CREATE TABLE matcher_closed_pairs (
    group_id   text    NOT NULL,
    topic      text    NOT NULL,
    partition  integer NOT NULL,
    offer_id   text    NOT NULL,
    request_id text    NOT NULL,
    PRIMARY KEY (group_id, topic, partition, offer_id, request_id)
);

-- Timers asked for by decisions (proposal answer periods, auction deadlines). The scheduler
-- publishes `value` to `topic` at `due_at`, with a CloudEvent id derived from the timer id, so
-- firing twice after a crash repeats the very same event, which consumers deduplicate.
CREATE TABLE timers (
    timer_id  text        PRIMARY KEY,
    topic     text        NOT NULL,
    key       bytea,
    value     bytea       NOT NULL,
    headers   jsonb       NOT NULL,
    due_at    timestamptz NOT NULL,
    fired_at  timestamptz
);
CREATE INDEX timers_due ON timers (due_at) WHERE fired_at IS NULL;
