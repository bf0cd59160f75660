-- People with their own logins (#19, decision 10 and 12). Everything personal about a person
-- (name, e-mail, password hash, second factor) lives here, in erasable rows, never in events or
-- the audit log; events name a person only by the pseudonymous person_id.
CREATE TABLE people (
    person_id     uuid        PRIMARY KEY,
    -- The organisation (partner) the person belongs to; NULL for the association's staff.
    partner_id    text,
    email         text        NOT NULL,
    display_name  text        NOT NULL,
    -- Within the organisation: admin (invites, manages members), member (acts), read-only
    -- (sees). The association's staff are operators and belong to no organisation.
    role          text        NOT NULL CHECK (role IN ('admin', 'member', 'read-only', 'operator')),
    -- Argon2id (PHC string); NULL until the person accepted the invitation and chose one.
    password_hash text,
    -- The TOTP secret sealed with the exchange's secret key ring (marketplace/secretbox.py).
    totp_sealed   text,
    locale        text        NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'bg', 'sv')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz,
    CHECK ((role = 'operator') = (partner_id IS NULL))
);
CREATE UNIQUE INDEX people_email ON people (lower(email));
CREATE INDEX people_partner ON people (partner_id);

-- A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a copy of
-- this table opens no session. The CSRF token is per session and is checked on every form.
CREATE TABLE web_sessions (
    token_hash  bytea       PRIMARY KEY,
    person_id   uuid        NOT NULL REFERENCES people ON DELETE CASCADE,
    csrf_token  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX web_sessions_person ON web_sessions (person_id);

-- One-time links (invitation, password reset): the token is in the link, its SHA-256 here.
CREATE TABLE one_time_links (
    token_hash bytea       PRIMARY KEY,
    person_id  uuid        NOT NULL REFERENCES people ON DELETE CASCADE,
    purpose    text        NOT NULL CHECK (purpose IN ('invite', 'reset')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX one_time_links_person ON one_time_links (person_id);

-- Failed sign-ins, for throttling per account and per client address (a sliding window).
-- UNLOGGED: a crash forgets a few minutes of failures, which is acceptable for a throttle.
CREATE UNLOGGED TABLE login_failures (
    subject   text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_subject ON login_failures (subject, failed_at);

-- Security-relevant actions of a person, for that person to see (sign-ins, password changes,
-- second factor, sessions ended). Erasable with the person.
CREATE TABLE account_events (
    person_id uuid        NOT NULL REFERENCES people ON DELETE CASCADE,
    at        timestamptz NOT NULL DEFAULT now(),
    what      text        NOT NULL
);
CREATE INDEX account_events_person ON account_events (person_id, at);
