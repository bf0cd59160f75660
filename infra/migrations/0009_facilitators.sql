-- Facilitators (#11): which SMEs let which facilitator act for them, and the nudges sent, kept
-- by the projector from partners.registry. The API authorises a facilitator's writes for an SME
-- by its row here (status 'granted').

CREATE TABLE consents (
    partner_id     text        NOT NULL,  -- the SME
    facilitator_id text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('granted', 'revoked')),
    note           text        NOT NULL DEFAULT '',
    granted_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (partner_id, facilitator_id)
);
CREATE INDEX consents_by_facilitator ON consents (facilitator_id, partner_id)
    WHERE status = 'granted';

CREATE TABLE nudges (
    event_id       text        PRIMARY KEY,
    listing_id     text        NOT NULL,
    partner_id     text        NOT NULL,  -- the SME that owns the listing
    facilitator_id text        NOT NULL,
    message        text        NOT NULL DEFAULT '',
    nudged_at      timestamptz NOT NULL
);
CREATE INDEX nudges_by_listing ON nudges (listing_id, nudged_at DESC);
