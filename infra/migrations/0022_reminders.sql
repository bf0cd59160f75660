-- Reminders (#20 item 3). Idempotent (IF NOT EXISTS): it may meet tables a development database
-- already has.
--
-- The reminders consumer keeps, per consumer group, what the log said of each subject (a
-- proposal, a listing, a standing agreement, a delivery) as facts of the pure core
-- (marketplace/core/reminders.py), and a 'Reminded' fact per reminder sent: it is written in the
-- batch's transaction that emits the notification, and its key makes a second one impossible,
-- also between two instances deciding the same subject at once.
CREATE TABLE IF NOT EXISTS reminder_facts (
    group_id   text        NOT NULL,
    subject_id text        NOT NULL,
    fact_id    text        NOT NULL,  -- the cause's event id and index, or the reminder's id
    kind       text        NOT NULL,  -- the core's fact type, e.g. 'ProposalMade'
    body       jsonb       NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (group_id, subject_id, fact_id)
);
