-- A trade of a material without a sourced carbon factor is matched all the same, with its CO2e
-- saving unknown: analytics records NULL, which the CO2e figures leave out and count apart.
ALTER TABLE analytics_matches ALTER COLUMN saved_kg DROP NOT NULL;
