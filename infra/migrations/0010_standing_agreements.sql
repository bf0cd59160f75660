-- Recurring flows (#11): the matcher keeps confirmed standing agreements in its book, beside
-- listings and open proposals, so that each period's delivery is scheduled from its state.
ALTER TABLE matcher_items DROP CONSTRAINT IF EXISTS matcher_items_kind_check;
ALTER TABLE matcher_items
    ADD CONSTRAINT matcher_items_kind_check CHECK (kind IN ('listing', 'proposal', 'agreement'));

-- A confirmed standing agreement ends when its term is over or a side withdraws its listing.
ALTER TABLE matches DROP CONSTRAINT IF EXISTS matches_status_check;
ALTER TABLE matches ADD CONSTRAINT matches_status_check
    CHECK (status IN ('proposed', 'confirmed', 'expired', 'cancelled', 'ended'));
