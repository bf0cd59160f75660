-- Invoices numbered per issuer without gaps (#22 item 2). Idempotent (IF NOT EXISTS): it may meet
-- tables a development database already has.
--
-- One row per issuer holds the last number it gave (0 before its first). Taking a number locks
-- and updates that row in the transaction that records the invoice
-- (marketplace.partners.issue_invoice), so it stays locked until the invoice is committed: a
-- concurrent invoice of the same issuer waits and takes the next number, and an invoice rolled
-- back gives its number back. A sequence would not do: nextval() is never rolled back.
CREATE TABLE IF NOT EXISTS invoice_numbers (
    issuer_id   text        PRIMARY KEY,
    last_number bigint      NOT NULL CHECK (last_number >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Each invoice issued: its issuer's number, the deal and what it bills (the material or the
-- transport), and the UBL XML exactly as built (its SHA-256 beside it). One invoice per deal and
-- kind: issuing it again returns the one recorded and takes no number.
CREATE TABLE IF NOT EXISTS invoices (
    issuer_id   text        NOT NULL,
    number      bigint      NOT NULL CHECK (number >= 1),
    match_id    text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('material', 'transport')),
    customer_id text        NOT NULL,
    xml         bytea       NOT NULL,
    sha256      text        NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer_id, number),
    UNIQUE (match_id, kind)
);
CREATE INDEX IF NOT EXISTS invoices_by_customer ON invoices (customer_id);
