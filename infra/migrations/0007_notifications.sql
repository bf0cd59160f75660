-- Notifications (decision 7): who the notifier told what, what each partner received (for the
-- live push to resume from), webhook endpoints and deliveries with their retry state.

-- The parties of each match the notifier has seen, so that an expiry, a cancellation or an
-- award (whose events do not name them) reaches both SMEs. One copy per consumer group.
CREATE TABLE notifier_parties (
    group_id  text NOT NULL,
    match_id  text NOT NULL,
    seller_id text NOT NULL,
    buyer_id  text NOT NULL,
    PRIMARY KEY (group_id, match_id)
);

-- Every notification issued, kept by the projector from partners.notifications. `seq` orders a
-- partner's notifications (they share one partition, applied in order), and a live client
-- resumes after the seq of the last notification id it saw.
CREATE TABLE notifications (
    seq             bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    notification_id text        PRIMARY KEY,
    partner_id      text        NOT NULL,
    kind            text        NOT NULL,
    subject_id      text        NOT NULL,
    body            jsonb       NOT NULL,
    issued_at       timestamptz NOT NULL
);
CREATE INDEX notifications_by_partner ON notifications (partner_id, seq);

-- A partner's webhook endpoints. Standard Webhooks signs with a shared secret, so it is stored
-- readable (never on Kafka, never logged, shown to the partner once). During a rotation the
-- previous secret signs too, until `previous_until`.
CREATE TABLE webhook_endpoints (
    endpoint_id     text        PRIMARY KEY,
    partner_id      text        NOT NULL,
    url             text        NOT NULL,
    kinds           text[]      NOT NULL DEFAULT '{}',  -- empty: every kind
    description     text        NOT NULL DEFAULT '',
    secret          text        NOT NULL,
    previous_secret text,
    previous_until  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    rotated_at      timestamptz,
    deleted_at      timestamptz
);
CREATE INDEX webhook_endpoints_by_partner ON webhook_endpoints (partner_id)
    WHERE deleted_at IS NULL;

-- One delivery per notification, endpoint and webhook worker group. The body is stored as sent,
-- so every attempt carries the same bytes and the same webhook-id (the notification id).
-- `next_attempt_at` is the retry schedule and `lease_until` covers an attempt in flight, so a
-- killed worker's deliveries are picked up again after a restart.
CREATE TABLE webhook_deliveries (
    delivery_id     text        PRIMARY KEY,
    group_id        text        NOT NULL,
    notification_id text        NOT NULL,
    endpoint_id     text        NOT NULL REFERENCES webhook_endpoints (endpoint_id),
    partner_id      text        NOT NULL,
    kind            text        NOT NULL,
    body            bytea       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'delivered', 'dead', 'cancelled')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    dead_at         timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (group_id, next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (partner_id, dead_at)
    WHERE status = 'dead';
