-- The deal room of a match (#22). Idempotent (IF NOT EXISTS): it may meet tables a development
-- database already has.
--
-- Written by the API in the request that posts a message, before it publishes the event:
-- the text and the attachments' bytes, personal data (decision 12). They are erasable: an
-- erasure deletes the rows, the events keep only the SHA-256, and the audit chains still verify.
-- Every read checks the content against the SHA-256 of its event (the read model below).
CREATE TABLE IF NOT EXISTS deal_texts (
    message_id text        PRIMARY KEY,
    match_id   text        NOT NULL,
    author_id  text        NOT NULL,
    person_id  text,
    body       text        NOT NULL,
    sha256     text        NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deal_texts_by_person ON deal_texts (person_id);

CREATE TABLE IF NOT EXISTS deal_files (
    attachment_id text        PRIMARY KEY,
    message_id    text        NOT NULL,
    match_id      text        NOT NULL,
    position      smallint    NOT NULL,
    name          text        NOT NULL,
    media_type    text        NOT NULL,
    size          integer     NOT NULL,
    sha256        text        NOT NULL,
    content       bytea       NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deal_files_by_message ON deal_files (message_id);

-- Kept by the deals consumer from market.deals, exactly once: what the log says was posted
-- (hashes and metadata, no text), who has read up to where, and one notice per participant.
CREATE TABLE IF NOT EXISTS deal_messages (
    seq          bigserial   PRIMARY KEY,
    message_id   text        NOT NULL UNIQUE,
    match_id     text        NOT NULL,
    author_id    text        NOT NULL,
    side         text        NOT NULL,
    on_behalf_of text,
    person_id    text,
    text_sha256  text        NOT NULL,
    attachments  jsonb       NOT NULL DEFAULT '[]',
    event_id     text        NOT NULL,
    posted_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS deal_messages_by_match ON deal_messages (match_id, seq);

CREATE TABLE IF NOT EXISTS deal_receipts (
    message_id text        NOT NULL,
    partner_id text        NOT NULL,
    match_id   text        NOT NULL,
    person_id  text,
    read_at    timestamptz NOT NULL,
    PRIMARY KEY (message_id, partner_id)
);
CREATE INDEX IF NOT EXISTS deal_receipts_by_match ON deal_receipts (match_id);

CREATE TABLE IF NOT EXISTS deal_notices (
    notice_id  bigserial   PRIMARY KEY,
    event_id   text        NOT NULL,
    partner_id text        NOT NULL,
    match_id   text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('message', 'read')),
    message_id text        NOT NULL,
    issued_at  timestamptz NOT NULL,
    UNIQUE (event_id, partner_id)
);
CREATE INDEX IF NOT EXISTS deal_notices_by_partner ON deal_notices (partner_id, notice_id);
