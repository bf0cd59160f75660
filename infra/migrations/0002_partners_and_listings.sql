-- Partners, their API keys, idempotent writes, and the read models the projector keeps.

-- Credentials are not a projection: the API must see a new or revoked key at once.
-- Only a SHA-256 of the key's secret part is stored; the key itself is shown once.
CREATE TABLE api_keys (
    key_id      text        PRIMARY KEY,
    partner_id  text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('sme', 'logistics', 'auditor', 'facilitator', 'operator')),
    secret_hash bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_by_partner ON api_keys (partner_id);

-- The answer to a write sent with an Idempotency-Key, so a retry gets the same answer.
CREATE TABLE idempotency_keys (
    partner_id   text        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       integer     NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, key)
);

-- Read models kept by consumers/projector from partners.registry and market.listings.
CREATE TABLE partners (
    partner_id    text        PRIMARY KEY,
    name          text        NOT NULL,
    role          text        NOT NULL,
    country       text        NOT NULL,
    region        text,
    sector        text,
    active        boolean     NOT NULL DEFAULT true,
    registered_at timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

CREATE TABLE carriers (
    partner_id   text        PRIMARY KEY,
    capabilities jsonb       NOT NULL,
    updated_at   timestamptz NOT NULL
);

CREATE TABLE listings (
    listing_id    text        PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('offer', 'request')),
    owner_id      text        NOT NULL,
    material_code text        NOT NULL,
    body          jsonb       NOT NULL,
    status        text        NOT NULL CHECK (status IN ('open', 'withdrawn')),
    posted_at     timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    last_event_id text        NOT NULL
);
CREATE INDEX listings_by_owner ON listings (owner_id, kind, posted_at DESC);
