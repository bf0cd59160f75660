-- A standing agreement's document set per delivery period (#22 item 3). Idempotent (IF NOT
-- EXISTS): it may meet columns a development database already has. No new table, so no new
-- grant: the services' role keeps the rights it has on these tables (marketplace/db.py).

-- The documents, their approvals and the invoices of one delivery period are kept in the tables
-- of a deal's, under the period's delivery id (market.delivery.scheduled.v1) where a one-off
-- match's are under its match id: both are ids of the same form and never equal, so one key
-- column serves both, and an invoice of a period takes its number from the issuer's one
-- sequence (invoice_numbers) like any other.
COMMENT ON COLUMN deal_documents.match_id IS
    'the match, or for a standing agreement''s period document the period''s delivery id';
COMMENT ON COLUMN deal_approvals.match_id IS
    'the match, or for a standing agreement''s period document the period''s delivery id';
COMMENT ON COLUMN invoices.match_id IS
    'the match, or for a standing agreement''s period invoice the period''s delivery id';

-- The carriers' delivery confirmations name their transport job: a standing agreement's period
-- counts the weight delivered by its own job's carrier in the KPIs instead of the scheduled
-- quantity, as a one-off match counts its match's. Rows kept before this migration have no job
-- (NULL): they keep counting for their one-off match as before.
ALTER TABLE analytics_delivered ADD COLUMN IF NOT EXISTS job_id text;
CREATE INDEX IF NOT EXISTS analytics_delivered_by_job ON analytics_delivered (job_id, delivered_at);
