-- One Idempotency-Key, one write, under any concurrency: the first request with a key reserves
-- it (a pending row: status and body NULL, held by `holder` until `held_until`) before it
-- publishes, with INSERT ... ON CONFLICT, so exactly one of any number of simultaneous requests
-- holds it. The others wait for the holder's stored answer and replay it. A holder that fails
-- deletes its reservation (the next request runs the write again, as a retry did before); one
-- that died leaves it to expire, and the next request with the same body takes it over.
ALTER TABLE idempotency_keys
    ALTER COLUMN status DROP NOT NULL,
    ALTER COLUMN body DROP NOT NULL,
    ADD COLUMN holder uuid,
    ADD COLUMN held_until timestamptz,
    ADD CONSTRAINT idempotency_keys_answered_or_held CHECK (
        (status IS NULL) = (body IS NULL)
        AND (status IS NOT NULL OR (holder IS NOT NULL AND held_until IS NOT NULL))
    );
