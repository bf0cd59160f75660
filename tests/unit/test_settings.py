from __future__ import annotations

from pathlib import Path

import pytest

from marketplace.settings import Settings, SettingsError, redact_url


def test_defaults_point_at_the_local_stack() -> None:
    s = Settings.from_env({})
    assert s.kafka_servers == "127.0.0.1:19092"
    # The services connect as the application role; migrations as the role that owns the tables.
    assert s.dsn == "postgresql://marketplace_app:marketplace_app@127.0.0.1:15432/marketplace"
    assert s.migrate_dsn == "postgresql://marketplace:marketplace@127.0.0.1:15432/marketplace"
    assert s.uses_local_kafka
    assert s.uses_local_postgres


def test_environment_overrides_are_typed() -> None:
    s = Settings.from_env(
        {
            "MARKETPLACE_KAFKA_BOOTSTRAP": "broker-1:9092,broker-2:9092",
            "MARKETPLACE_DATABASE_URL": "postgresql://app:s3cret@db:5432/exchange",
            "MARKETPLACE_TOPIC_PARTITIONS": "12",
            "MARKETPLACE_TOPIC_REPLICATION": "3",
            "MARKETPLACE_TOPIC_MIN_INSYNC": "2",
            "MARKETPLACE_OUTBOX_SWEEP_INTERVAL_S": "2.5",
            "MARKETPLACE_LOG_FORMAT": "JSON",
            "MARKETPLACE_LOCAL_DIR": "/srv/marketplace",
        }
    )
    assert s.kafka_servers == "broker-1:9092,broker-2:9092"
    assert not s.uses_local_kafka
    assert s.dsn == "postgresql://app:s3cret@db:5432/exchange"
    # One URL only: migrations use it too (a single-role deployment, as before).
    assert s.migrate_dsn == s.dsn
    assert (s.topic_partitions, s.topic_replication, s.topic_min_insync) == (12, 3, 2)
    assert s.outbox_sweep_interval_s == 2.5
    assert s.log_format == "json"
    assert s.local_dir == Path("/srv/marketplace")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MARKETPLACE_PG_PORT": "five"}, "MARKETPLACE_PG_PORT='five': expected int"),
        ({"MARKETPLACE_HTTP_PORT": "70000"}, "MARKETPLACE_HTTP_PORT=70000: not a TCP port"),
        ({"MARKETPLACE_LOG_LEVEL": "loud"}, "expected one of debug, info, warning, error"),
        ({"MARKETPLACE_TOPIC_PARTITIONS": "0"}, "MARKETPLACE_TOPIC_PARTITIONS must be at least 1"),
        (
            {"MARKETPLACE_TOPIC_MIN_INSYNC": "2"},
            "MARKETPLACE_TOPIC_MIN_INSYNC (2) cannot exceed MARKETPLACE_TOPIC_REPLICATION (1)",
        ),
        ({"MARKETPLACE_DATABASE_URL": "mysql://x@y/z"}, "must be a postgresql:// URL"),
        (
            {
                "MARKETPLACE_DATABASE_URL": "postgresql://app@db/x",
                "MARKETPLACE_MIGRATE_DATABASE_URL": "mysql://x@y/z",
            },
            "MARKETPLACE_MIGRATE_DATABASE_URL must be a postgresql:// URL",
        ),
        (
            {"MARKETPLACE_MIGRATE_DATABASE_URL": "postgresql://owner@db/x"},
            "MARKETPLACE_MIGRATE_DATABASE_URL needs MARKETPLACE_DATABASE_URL",
        ),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert message in str(err.value)


def test_two_urls_split_the_services_role_from_the_owner() -> None:
    s = Settings.from_env(
        {
            "MARKETPLACE_DATABASE_URL": "postgresql://app:a@db/exchange",
            "MARKETPLACE_MIGRATE_DATABASE_URL": "postgresql://owner:o@db/exchange",
        }
    )
    assert s.dsn == "postgresql://app:a@db/exchange"
    assert s.migrate_dsn == "postgresql://owner:o@db/exchange"


def test_redacted_settings_hide_every_password() -> None:
    s = Settings.from_env(
        {
            "MARKETPLACE_DB_PASSWORD": "local-secret",
            "MARKETPLACE_DB_APP_PASSWORD": "app-secret",
            "MARKETPLACE_DATABASE_URL": "postgresql://app:remote-secret@db/exchange",
            "MARKETPLACE_MIGRATE_DATABASE_URL": "postgresql://owner:owner-secret@db/exchange",
        }
    )
    shown = " ".join(s.redacted().values())
    for secret in ("local-secret", "app-secret", "remote-secret", "owner-secret"):
        assert secret not in shown
    assert "postgresql://app:***@db/exchange" in shown
    assert "local-secret" not in repr(s.redacted())


def test_redact_url_leaves_urls_without_password_alone() -> None:
    assert redact_url("postgresql://app@db/x") == "postgresql://app@db/x"
    assert redact_url("postgresql://app:pw@db:5/x") == "postgresql://app:***@db:5/x"
