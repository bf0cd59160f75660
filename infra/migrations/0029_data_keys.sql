-- Crypto-shredding (#21 item 8): one data key per organisation (subject 'partner:<id>'), made on
-- first use by whoever seals an event's personal fields, stored encrypted under the operator's
-- key ring (Fernet, `fernet:<key id>:<token>`, marketplace/secretbox.py), never in clear.
-- Erasing the organisation deletes its row: what the key sealed on Kafka and in the audit log
-- can then be read by no one, and the records (and their chains) stay as they were.
-- marketplace/translate/shredding.py.
CREATE TABLE data_keys (
    subject     text        PRIMARY KEY
                            CHECK (subject ~ '^(partner|person):[A-Za-z0-9._:-]{1,64}$'),
    sealed_key  text        NOT NULL CHECK (sealed_key LIKE 'fernet:%'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- When `marketplace webhooks rotate-key` last re-encrypted it under a new key of the ring.
    resealed_at timestamptz
);

-- The services' role needs every row right: INSERT (a key made on first use), SELECT and
-- SELECT ... FOR SHARE (sealing, opening), UPDATE (a rotation re-encrypts it), DELETE (erasure);
-- the default privileges of `marketplace migrate` give it exactly those, and nothing more
-- (no TRUNCATE, REFERENCES or TRIGGER). Nothing here for PUBLIC.
REVOKE ALL ON data_keys FROM PUBLIC;
