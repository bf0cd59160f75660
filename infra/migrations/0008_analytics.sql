-- Impact analytics (monitoring and evaluation): facts kept by consumers/analytics.py from the
-- event streams, one table per kind of fact, each row keyed by its own id so that facts from
-- different topics may arrive in any order; KPIs join them when they are read
-- (marketplace/kpis.py). `marketplace report` rebuilds the same tables from the audit log.

CREATE TABLE analytics_partners (
    partner_id text PRIMARY KEY,
    role       text NOT NULL,
    country    text NOT NULL,
    region     text,
    sector     text
);

CREATE TABLE analytics_listings (
    listing_id   text             PRIMARY KEY,
    kind         text             NOT NULL CHECK (kind IN ('offer', 'request')),
    owner_id     text             NOT NULL,
    code         text             NOT NULL,
    region       text,
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    tonnes       double precision,  -- NULL when the quantity has no mass (pieces, no density)
    posted_at    timestamptz      NOT NULL,
    withdrawn_at timestamptz
);
CREATE INDEX analytics_listings_posted ON analytics_listings (posted_at);
CREATE INDEX analytics_listings_owner ON analytics_listings (owner_id);

CREATE TABLE analytics_matches (
    match_id          text             PRIMARY KEY,
    offer_id          text             NOT NULL,
    request_id        text             NOT NULL,
    seller_id         text             NOT NULL,
    buyer_id          text             NOT NULL,
    code              text             NOT NULL,
    tonnes            double precision NOT NULL,
    price             double precision NOT NULL,  -- delivered, per tonne, estimate
    currency          text             NOT NULL,
    est_transport_kg  double precision NOT NULL,  -- CO2e of transport, estimated
    saved_kg          double precision NOT NULL,  -- CO2e saved by reuse, before transport
    proposed_at       timestamptz      NOT NULL,
    status            text             NOT NULL DEFAULT 'proposed',
    resolved_at       timestamptz
);
CREATE INDEX analytics_matches_proposed ON analytics_matches (proposed_at);
CREATE INDEX analytics_matches_offer ON analytics_matches (offer_id);
CREATE INDEX analytics_matches_request ON analytics_matches (request_id);

CREATE TABLE analytics_jobs (
    job_id     text        PRIMARY KEY,
    match_id   text        NOT NULL,
    posted_at  timestamptz NOT NULL
);
CREATE INDEX analytics_jobs_match ON analytics_jobs (match_id);

CREATE TABLE analytics_quotes (
    quote_id     text        PRIMARY KEY,
    job_id       text        NOT NULL,
    carrier_id   text        NOT NULL,
    submitted_at timestamptz NOT NULL,
    withdrawn_at timestamptz
);
CREATE INDEX analytics_quotes_job ON analytics_quotes (job_id);

-- The auction's outcome: the winning quote's real price and CO2e, or a failure.
CREATE TABLE analytics_awards (
    job_id     text             PRIMARY KEY,
    match_id   text             NOT NULL,
    carrier_id text,
    price      double precision,
    co2e_kg    double precision,
    failed     boolean          NOT NULL,
    decided_at timestamptz      NOT NULL
);
CREATE INDEX analytics_awards_match ON analytics_awards (match_id);
