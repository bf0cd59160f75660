-- The audit log (decision 8): every record of every topic, once, hash-chained per topic
-- partition, append-only. See marketplace/audit/README.md for the hash and checkpoint formats.

CREATE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- One row per Kafka record. `value` and `headers` are kept exactly as received (the hash covers
-- them); `data` is the value parsed as JSON, for queries, when it is JSON at all. Partitioned by
-- month of the record's Kafka timestamp, so that old months can be detached and archived whole.
CREATE TABLE audit_log (
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    kafka_offset bigint      NOT NULL,
    kafka_ts     bigint      NOT NULL,  -- the record's timestamp, ms since the epoch
    recorded_at  timestamptz NOT NULL,  -- the same instant, as the partition key
    ce_id        text,
    ce_type      text,
    ce_source    text,
    ce_subject   text,
    ce_time      timestamptz,
    key          bytea,
    headers      jsonb       NOT NULL,  -- [[name, base64 value], ...] in the record's order
    value        bytea,
    data         jsonb,
    refs         text[]      NOT NULL DEFAULT '{}',  -- ids the event mentions, for `audit history`
    prev_hash    bytea       NOT NULL,
    hash         bytea       NOT NULL,
    PRIMARY KEY (topic, partition, kafka_offset, recorded_at)
) PARTITION BY RANGE (recorded_at);

CREATE INDEX audit_log_chain ON audit_log (topic, partition, kafka_offset);
CREATE INDEX audit_log_time ON audit_log (recorded_at);
CREATE INDEX audit_log_refs ON audit_log USING gin (refs);

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC, CURRENT_USER;

-- Creates the month's partition holding `at`, if it is missing, with the same protections as the
-- parent (TRUNCATE triggers and privileges do not pass down to partitions by themselves).
CREATE FUNCTION audit_ensure_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamptz := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name text := 'audit_log_' || to_char(at AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('audit_ensure_partition'));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    EXECUTE format(
        'CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
        name, month_start, month_start + interval '1 month'
    );
    EXECUTE format(
        'CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON %I'
        ' FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()', name
    );
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %I FROM PUBLIC, CURRENT_USER', name);
    RETURN name;
END
$$;

-- Signed checkpoints: `body` is exactly the bytes that were signed (canonical JSON of the heads of
-- all chains), so that anyone can check the signature against the published public key.
CREATE TABLE audit_checkpoints (
    checkpoint_id bigserial   PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    public_key    bytea       NOT NULL,
    body          bytea       NOT NULL,
    signature     bytea       NOT NULL
);

CREATE INDEX audit_checkpoints_time ON audit_checkpoints (created_at);

CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_checkpoints FROM PUBLIC, CURRENT_USER;
