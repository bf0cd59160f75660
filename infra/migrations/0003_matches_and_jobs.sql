-- Read models for match proposals and transport jobs, kept by the projector.

CREATE TABLE matches (
    match_id      text        PRIMARY KEY,
    material_code text        NOT NULL,
    seller_id     text        NOT NULL,
    buyer_id      text        NOT NULL,
    body          jsonb       NOT NULL,
    status        text        NOT NULL CHECK (status IN ('proposed', 'confirmed', 'expired', 'cancelled')),
    -- {"<partner id>": "accepted" | "declined"} as the partners answer.
    answers       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    proposed_at   timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX matches_by_seller ON matches (seller_id, proposed_at DESC);
CREATE INDEX matches_by_buyer ON matches (buyer_id, proposed_at DESC);

CREATE TABLE jobs (
    job_id           text        PRIMARY KEY,
    match_id         text        NOT NULL,
    body             jsonb       NOT NULL,
    status           text        NOT NULL CHECK (status IN ('open', 'awarded', 'failed')),
    bidding_deadline timestamptz NOT NULL,
    winner_id        text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX jobs_open ON jobs (bidding_deadline) WHERE status = 'open';

CREATE TABLE quotes (
    quote_id   text        PRIMARY KEY,
    job_id     text        NOT NULL,
    carrier_id text        NOT NULL,
    body       jsonb       NOT NULL,
    status     text        NOT NULL CHECK (status IN ('active', 'withdrawn')),
    updated_at timestamptz NOT NULL
);
CREATE INDEX quotes_by_job ON quotes (job_id, carrier_id);
