-- Idempotency reservations move out of `idempotency_keys` into a table of their own, and a
-- stored answer keeps the headers a retry must get again (`Location`).
--
-- Since 0016 a request reserved its key with a pending row in `idempotency_keys` (status and
-- body NULL). An API process of a version before 0016, still running during a rolling upgrade,
-- reads that table and replays any row it finds: a pending row gave it a NULL status, a 500.
-- From here on `idempotency_keys` holds answers only (as every version expects) and a request
-- in progress is a row of `idempotency_reservations`, which older versions never read. Pending
-- rows that a 0016-era process still writes during the upgrade are understood by this version
-- (a holder at work, or a dead one taken over once its lease has run out).
CREATE TABLE idempotency_reservations (
    partner_id   text        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    holder       uuid        NOT NULL,
    held_until   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, key)
);

-- The answer's headers to replay (only `Location` is kept); NULL for answers stored before.
ALTER TABLE idempotency_keys ADD COLUMN headers jsonb;
