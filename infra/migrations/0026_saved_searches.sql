-- Saved searches of the open market (#19): a person keeps the filters of /app/market (kind,
-- words or a code, region) under a name, to run them again. They belong to the person, not the
-- organisation: kept with the account (erased with it, given in its export), never in events.
CREATE TABLE saved_searches (
    search_id  uuid        PRIMARY KEY,
    person_id  uuid        NOT NULL REFERENCES people ON DELETE CASCADE,
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    kind       text        NOT NULL DEFAULT '' CHECK (kind IN ('', 'offer', 'request')),
    q          text        NOT NULL DEFAULT '' CHECK (length(q) <= 100),
    region     text        NOT NULL DEFAULT '' CHECK (length(region) <= 5),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (person_id, name)
);
