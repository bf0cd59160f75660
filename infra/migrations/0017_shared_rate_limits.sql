-- The per-key rate limit, shared by every API process (producers/api/ratelimit.py): one token
-- bucket row per API key, refilled and taken from in one UPSERT, on the database's clock.
-- UNLOGGED: a bucket is a few seconds of state; after a crash (or on a promoted standby) the
-- buckets start full again, which costs nothing, and no request writes WAL for them.
CREATE UNLOGGED TABLE api_rate_buckets (
    key_id     text             PRIMARY KEY,
    tokens     double precision NOT NULL,
    updated_at timestamptz      NOT NULL,
    -- Whether the last request took a token (returned by the UPSERT that decided it).
    allowed    boolean          NOT NULL
);
