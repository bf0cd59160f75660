-- The auctioneer's state, one row per transport job and consumer group, and the read-model
-- columns that carry an auction's outcome to the carriers and the SMEs.

-- `body` is the auction core's state (marketplace/core/auction.py `Auction`) as JSON. Only open
-- auctions are loaded on assignment; decided ones are read when an event about them arrives.
CREATE TABLE auctioneer_jobs (
    group_id  text    NOT NULL,
    topic     text    NOT NULL,
    partition integer NOT NULL,
    job_id    text    NOT NULL,
    status    text    NOT NULL CHECK (status IN ('open', 'awarded', 'failed')),
    body      jsonb   NOT NULL,
    PRIMARY KEY (group_id, topic, partition, job_id)
);
CREATE INDEX auctioneer_jobs_open ON auctioneer_jobs (group_id, topic, partition)
    WHERE status = 'open';

-- A quote the auctioneer refused ('rejected'), the refusal itself ({action, submission_id,
-- reason_code, reason, previous_stands}) and, once the job is decided, whether it won.
ALTER TABLE quotes DROP CONSTRAINT quotes_status_check;
ALTER TABLE quotes ADD CONSTRAINT quotes_status_check
    CHECK (status IN ('active', 'withdrawn', 'rejected'));
ALTER TABLE quotes ADD COLUMN refusal jsonb;
ALTER TABLE quotes ADD COLUMN outcome text CHECK (outcome IN ('won', 'lost'));

-- Why an auction failed (or reopened), for the bidders.
ALTER TABLE jobs ADD COLUMN outcome_reason text;

-- The match's transport: {job_id, status, bidding_deadline, reserves, carrier_id, quote_id,
-- price, co2e_kg, estimated_price, estimated_co2e_kg}; the body's delivered_price and
-- transport_co2e_kg switch from the estimate to the winning quote's figures on award.
ALTER TABLE matches ADD COLUMN transport jsonb;
CREATE INDEX jobs_by_match ON jobs (match_id);
