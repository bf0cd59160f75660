-- Recurring flows in the KPIs (#11): a standing agreement's quantity is per period, so its
-- tonnes and CO2e count once per scheduled delivery, in the period the delivery is scheduled,
-- not at the agreement's confirmation (which still counts as one confirmed match).
ALTER TABLE analytics_matches ADD COLUMN standing boolean NOT NULL DEFAULT false;

CREATE TABLE analytics_scheduled (
    delivery_id  text             PRIMARY KEY,
    match_id     text             NOT NULL,
    job_id       text             NOT NULL,  -- the delivery's transport job (derived id)
    tonnes       double precision NOT NULL,
    scheduled_at timestamptz      NOT NULL
);
CREATE INDEX analytics_scheduled_time ON analytics_scheduled (scheduled_at);
CREATE INDEX analytics_scheduled_match ON analytics_scheduled (match_id);
