-- The matcher's book items (#18, target 2): `body` becomes bytea holding the core's record as
-- msgpack (consumers/matcher.py, `encode_item`), written as the matcher makes it, instead of
-- jsonb that PostgreSQL parsed for every changed item of every batch. Nothing reads the column
-- in SQL; the matcher, `marketplace rebuild rekey` and `marketplace rebuild split` read it
-- through `Matcher.load`. The rows already there keep their document, as its JSON text (UTF-8),
-- which `Matcher.load` still reads (a msgpack body never starts with "{"); each is written as
-- msgpack when its item next changes. The table's grants are unchanged (APP_PRIVILEGES in
-- marketplace/db.py: the default rights, which the services' role needs on its own book).
ALTER TABLE matcher_items
    ALTER COLUMN body TYPE bytea USING convert_to(body::text, 'UTF8');
