-- Least privilege (docs/operators/security.md): the services connect as an application role that
-- owns nothing, so they cannot create the audit log's monthly partitions themselves. This
-- function creates them with its owner's rights (the role that runs the migrations). It only
-- ever creates the partition of audit_log for the month of `at`, with the parent's protections,
-- and the application role may EXECUTE it (granted by `marketplace migrate`; PUBLIC may not).
-- Partitions are made on demand rather than ahead of time because the auditor files a record
-- under the month of its Kafka timestamp, which no migration can foresee (replays, clocks).
CREATE OR REPLACE FUNCTION audit_ensure_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    month_start timestamptz := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name text := 'audit_log_' || to_char(at AT TIME ZONE 'UTC', 'YYYY_MM');
    grantee text;
BEGIN
    IF to_regclass('public.' || name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('audit_ensure_partition'));
    IF to_regclass('public.' || name) IS NOT NULL THEN
        RETURN name;
    END IF;
    EXECUTE format(
        'CREATE TABLE public.%I PARTITION OF public.audit_log FOR VALUES FROM (%L) TO (%L)',
        name, month_start, month_start + interval '1 month'
    );
    EXECUTE format(
        'CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON public.%I'
        ' FOR EACH STATEMENT EXECUTE FUNCTION public.audit_refuse_change()', name
    );
    -- Rows are reached through audit_log, whose privileges are the ones checked: a partition
    -- gives nobody but its owner anything, whatever default privileges granted on creation.
    FOR grantee IN
        SELECT DISTINCT a.grantee::regrole::text
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid = ('public.' || name)::regclass AND a.grantee <> c.relowner AND a.grantee <> 0
    LOOP
        EXECUTE format('REVOKE ALL ON public.%I FROM %s', name, grantee);
    END LOOP;
    EXECUTE format('REVOKE ALL ON public.%I FROM PUBLIC', name);
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON public.%I FROM CURRENT_USER', name);
    RETURN name;
END
$$;

REVOKE ALL ON FUNCTION audit_ensure_partition(timestamptz) FROM PUBLIC;
