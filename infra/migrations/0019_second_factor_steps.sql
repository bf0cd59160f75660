-- TOTP second factors (#19): the last time step a person's code was accepted for, so that a
-- code seen once (over a shoulder, in a proxy's log) cannot sign in again within its window.
ALTER TABLE people ADD COLUMN totp_last_step bigint;
