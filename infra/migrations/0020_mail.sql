-- E-mail to people (#20). Everything here is personal (addresses, what a person chose, the
-- messages as sent) and erasable with the person (ON DELETE CASCADE); events never carry it.

-- What each person wants by e-mail. No row: the defaults (marketplace/mail/prefs.py).
CREATE TABLE mail_preferences (
    person_id   uuid        PRIMARY KEY REFERENCES people ON DELETE CASCADE,
    -- notification kind -> 'immediate' | 'digest' | 'none'; a kind not named: its default.
    kinds       jsonb       NOT NULL DEFAULT '{}',
    -- The daily digest's hour in the person's time zone (an IANA name; NULL: from the
    -- organisation's country).
    digest_hour smallint    NOT NULL DEFAULT 8 CHECK (digest_hour BETWEEN 0 AND 23),
    time_zone   text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Addresses their owner proved by a link sent to them. Only a verified address gets mail.
CREATE TABLE mail_verified (
    person_id   uuid        NOT NULL REFERENCES people ON DELETE CASCADE,
    email       text        NOT NULL,  -- lower case
    how         text        NOT NULL CHECK (how IN ('verify', 'invite', 'reset')),
    verified_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (person_id, email)
);

-- Verification links: the token is in the link, its SHA-256 here.
CREATE TABLE mail_verify_links (
    token_hash bytea       PRIMARY KEY,
    person_id  uuid        NOT NULL REFERENCES people ON DELETE CASCADE,
    email      text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX mail_verify_links_person ON mail_verify_links (person_id);

-- Invitation and reset links that went out by e-mail: using one proves the address it went to.
CREATE TABLE mail_sent_links (
    token_hash bytea       PRIMARY KEY REFERENCES one_time_links ON DELETE CASCADE,
    person_id  uuid        NOT NULL REFERENCES people ON DELETE CASCADE,
    email      text        NOT NULL,
    sent_at    timestamptz NOT NULL DEFAULT now()
);

-- Every message the mailer sends, rendered once (so a resend after a crash carries the same
-- bytes and the same Message-ID, which is derived from the notification and the person) and
-- DKIM-signed at each attempt. Retry state as for webhooks: `next_attempt_at` the schedule,
-- `lease_until` an attempt in flight (a killed mailer's messages are sent again after it).
CREATE TABLE mail_deliveries (
    group_id        text        NOT NULL,
    message_id      text        NOT NULL,  -- without the angle brackets
    person_id       uuid        NOT NULL REFERENCES people ON DELETE CASCADE,
    kind            text        NOT NULL,  -- a notification kind, 'digest' or 'account.*'
    notification_id text,                  -- NULL for digests and account e-mails
    recipient       text        NOT NULL,
    message         bytea       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    dead_at         timestamptz,
    PRIMARY KEY (group_id, message_id)
);
CREATE INDEX mail_deliveries_due ON mail_deliveries (group_id, next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX mail_deliveries_person ON mail_deliveries (person_id);

-- Notifications waiting for a person's daily digest; `digest_id` names the digest (its
-- message_id) that carried them.
CREATE TABLE mail_digest_items (
    group_id        text        NOT NULL,
    person_id       uuid        NOT NULL REFERENCES people ON DELETE CASCADE,
    notification_id text        NOT NULL,
    kind            text        NOT NULL,
    summary         text        NOT NULL,
    data            jsonb       NOT NULL,
    issued_at       timestamptz NOT NULL,
    digest_id       text,
    PRIMARY KEY (group_id, person_id, notification_id)
);
CREATE INDEX mail_digest_items_waiting ON mail_digest_items (group_id, person_id)
    WHERE digest_id IS NULL;
