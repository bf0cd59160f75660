-- Alerts of saved searches (#19): a one-off listing that confirmed deals have fully taken is no
-- longer open for alerts, though its owner has not withdrawn it. The alerts consumer keeps, per
-- consumer group, each listing's quantity in the matcher's base unit (tonnes when the material's
-- mass is known; NULL for a recurring listing, whose quantity is per period) with the material's
-- mass per unit that an update's terms are converted with, and the weight each confirmed one-off
-- match took of each listing (one row per match, so a replayed confirmation counts once).
ALTER TABLE search_alert_listings
    ADD COLUMN base_quantity    double precision,
    ADD COLUMN density_t_per_m3 double precision,
    ADD COLUMN mass_per_piece_t double precision;

CREATE TABLE search_alert_taken (
    group_id   text NOT NULL,
    listing_id text NOT NULL,
    match_id   text NOT NULL,
    taken      double precision NOT NULL CHECK (taken > 0),
    PRIMARY KEY (group_id, listing_id, match_id)
);
