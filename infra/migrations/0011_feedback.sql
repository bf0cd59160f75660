-- The voice of the user (#11): deliveries confirmed by the buyer or the carrier, and the feedback
-- the parties give afterwards, kept by the projector from market.matches; and the same two as
-- analytics facts for the KPIs and the period reports.
--
-- A delivery is identified by its `delivery_key`: the delivery id of one period under a standing
-- agreement, or the match id of a one-off match. Each party answers once per delivery: the first
-- answer in the log counts (the API refuses a second one).

CREATE TABLE deliveries (
    delivery_key  text        PRIMARY KEY,
    match_id      text        NOT NULL,
    delivery_id   text,
    material_code text        NOT NULL,
    seller_id     text        NOT NULL,
    buyer_id      text        NOT NULL,
    carrier_id    text,
    confirmed_by  text        NOT NULL,
    confirmed_as  text        NOT NULL CHECK (confirmed_as IN ('buyer', 'carrier')),
    note          text        NOT NULL DEFAULT '',
    delivered_at  timestamptz NOT NULL
);
CREATE INDEX deliveries_by_match ON deliveries (match_id);

CREATE TABLE feedback (
    feedback_id  text        PRIMARY KEY,
    delivery_key text        NOT NULL,
    match_id     text        NOT NULL,
    partner_id   text        NOT NULL,
    side         text        NOT NULL CHECK (side IN ('seller', 'buyer', 'carrier')),
    rating       smallint    NOT NULL CHECK (rating BETWEEN 1 AND 5),
    reason       text        NOT NULL,
    comment      text        NOT NULL DEFAULT '',
    given_at     timestamptz NOT NULL,
    UNIQUE (delivery_key, partner_id)
);
CREATE INDEX feedback_by_time ON feedback (given_at);
CREATE INDEX feedback_by_match ON feedback (match_id);

CREATE TABLE analytics_deliveries (
    delivery_key text        PRIMARY KEY,
    match_id     text        NOT NULL,
    parties      smallint    NOT NULL,  -- asked for feedback: seller and buyer, and the carrier
    delivered_at timestamptz NOT NULL
);
CREATE INDEX analytics_deliveries_time ON analytics_deliveries (delivered_at);

CREATE TABLE analytics_feedback (
    feedback_id  text        PRIMARY KEY,
    delivery_key text        NOT NULL,
    match_id     text        NOT NULL,
    partner_id   text        NOT NULL,
    side         text        NOT NULL,
    rating       smallint    NOT NULL,
    reason       text        NOT NULL,
    given_at     timestamptz NOT NULL,
    UNIQUE (delivery_key, partner_id)
);
CREATE INDEX analytics_feedback_time ON analytics_feedback (given_at);
CREATE INDEX analytics_feedback_delivery ON analytics_feedback (delivery_key);
