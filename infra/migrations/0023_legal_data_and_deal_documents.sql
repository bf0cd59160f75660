-- Partners' legal data and the documents of a deal (#22 item 2). Idempotent (IF NOT EXISTS): it
-- may meet tables a development database already has.

-- Kept by the projector from partners.legal.declared.v1 (partners.registry): the latest
-- declaration of each organisation. A firm's trade-register data, not a person's.
CREATE TABLE IF NOT EXISTS partner_legal (
    partner_id  text        PRIMARY KEY,
    legal_name  text        NOT NULL,
    street      text        NOT NULL,
    postcode    text        NOT NULL,
    city        text        NOT NULL,
    country     text        NOT NULL,
    vat_number  text,
    peppol_id   text,
    event_id    text        NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- Kept by the deals consumer: the events of a deal that its documents are built from (the
-- confirmed match, the award, the carrier's pickup and delivery confirmations, the buyer's
-- confirmation of delivery), each once, in the order the consumer met them.
CREATE TABLE IF NOT EXISTS deal_events (
    seq       bigserial   PRIMARY KEY,
    event_id  text        NOT NULL UNIQUE,
    match_id  text        NOT NULL,
    type      text        NOT NULL,
    body      jsonb       NOT NULL,
    at        timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS deal_events_by_match ON deal_events (match_id, seq);

-- Written by the API: each different content a document of a deal has had, numbered from 1 in
-- the order they were first built (a new version when its source events change). The content
-- is what the pure builder made; the PDF and the JSON file are rendered from it.
CREATE TABLE IF NOT EXISTS deal_documents (
    match_id  text        NOT NULL,
    kind      text        NOT NULL CHECK (kind IN ('order', 'transport', 'delivery')),
    version   integer     NOT NULL CHECK (version >= 1),
    sha256    text        NOT NULL,
    content   jsonb       NOT NULL,
    built_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (match_id, kind, version),
    UNIQUE (match_id, kind, sha256)
);

-- Kept by the deals consumer from market.deal.document_approved.v1: the versions their issuer
-- approved, with the SHA-256 the approval names (a stored content that no longer matches it is
-- refused on download).
CREATE TABLE IF NOT EXISTS deal_approvals (
    match_id    text        NOT NULL,
    kind        text        NOT NULL,
    version     integer     NOT NULL,
    sha256      text        NOT NULL,
    issuer_id   text        NOT NULL,
    person_id   text,
    event_id    text        NOT NULL,
    approved_at timestamptz NOT NULL,
    PRIMARY KEY (match_id, kind, version)
);

-- Deal notices now also tell of documents approved and transport confirmed.
ALTER TABLE deal_notices DROP CONSTRAINT IF EXISTS deal_notices_kind_check;
ALTER TABLE deal_notices ADD CONSTRAINT deal_notices_kind_check
    CHECK (kind IN ('message', 'read', 'document', 'transport'));

-- Kept by the analytics consumer from market.deal.transport_confirmed.v1 (stage delivery): the
-- weights carriers delivered. The KPIs count a one-off match's latest delivered weight dated
-- before a period's end instead of the tonnes planned at its confirmation.
CREATE TABLE IF NOT EXISTS analytics_delivered (
    event_id     text        PRIMARY KEY,
    match_id     text        NOT NULL,
    weight_t     float8      NOT NULL,
    delivered_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS analytics_delivered_by_match ON analytics_delivered (match_id, delivered_at);
