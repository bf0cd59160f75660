-- The notifier keeps what it needs from the topics it reads, one copy per consumer group, instead
-- of reading the projector's read models: so a replay of the log decides the same notifications.
-- The logistics firms' declared coverage (partners.registry), whether each partner is active,
-- and the transport jobs (logistics.jobs), whose fitting firms a reopened auction tells again.
CREATE TABLE notifier_carriers (
    group_id   text    NOT NULL,
    partner_id text    NOT NULL,
    coverage   jsonb,            -- NULL while the partner declared none
    active     boolean NOT NULL DEFAULT true,
    PRIMARY KEY (group_id, partner_id)
);

CREATE TABLE notifier_jobs (
    group_id text  NOT NULL,
    job_id   text  NOT NULL,
    body     jsonb NOT NULL,     -- the TransportJobRequested event
    PRIMARY KEY (group_id, job_id)
);

-- Notifier groups that ran before this migration read these from the read models until now:
-- they start from a copy of them.
INSERT INTO notifier_carriers (group_id, partner_id, coverage, active)
SELECT g.group_id, c.partner_id, c.capabilities, COALESCE(p.active, true)
FROM (SELECT DISTINCT group_id FROM notifier_parties) g
CROSS JOIN carriers c
LEFT JOIN partners p ON p.partner_id = c.partner_id;

INSERT INTO notifier_jobs (group_id, job_id, body)
SELECT g.group_id, j.job_id, j.body || '{"type": "logistics.job.requested.v1"}'::jsonb
FROM (SELECT DISTINCT group_id FROM notifier_parties) g
CROSS JOIN jobs j;
