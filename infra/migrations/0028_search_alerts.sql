-- Alerts of saved searches (#19): a person marks a saved search to be told of new listings that
-- fit it. The alerts consumer (consumers/alerts.py) keeps, per consumer group, what it needs of
-- each open listing (the updates carry neither the place nor the owner) and which person was
-- told of which listing, so that a listing is alerted once per person, replays included.
-- When the person marked the search (NULL: not marked): a listing is alerted only if its event
-- came at or after that moment, so marking a search, or a new consumer group reading the log from
-- its start, never sends what was posted before.
ALTER TABLE saved_searches ADD COLUMN alerts_since timestamptz;
CREATE INDEX saved_searches_alerts ON saved_searches (person_id) WHERE alerts_since IS NOT NULL;

CREATE TABLE search_alert_listings (
    group_id      text NOT NULL,
    listing_id    text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('offer', 'request')),
    owner_id      text NOT NULL,
    material_code text NOT NULL,
    region        text NOT NULL DEFAULT '',
    open          boolean NOT NULL DEFAULT true,
    PRIMARY KEY (group_id, listing_id)
);

CREATE TABLE search_alerts_sent (
    group_id        text NOT NULL,
    listing_id      text NOT NULL,
    person_id       uuid NOT NULL,
    notification_id text NOT NULL,
    PRIMARY KEY (group_id, listing_id, person_id)
);
