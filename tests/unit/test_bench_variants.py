"""The pipeline benchmark's variants: settings for every service process, and a lower CPU
priority for named services."""

from __future__ import annotations

import pytest

from loadtests.bench_pipeline import parse_variant


def test_a_variant_carries_settings_and_niceness_by_service() -> None:
    name, env = parse_variant("niced:MARKETPLACE_CONSUMER_MAX_BATCH=50,nice.projector=10")
    assert name == "niced"
    assert env == {"MARKETPLACE_CONSUMER_MAX_BATCH": "50", "nice.projector": "10"}
    assert parse_variant("default") == ("default", {})


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("x:nice.auditor=10", "nice.SERVICE=N takes a service of the pipeline"),
        ("x:nice.projector=0", "N from 1 to 19"),
        ("x:nice.projector=20", "N from 1 to 19"),
        ("x:nice.projector=high", "N from 1 to 19"),
        ("x:CONSUMER_MAX_BATCH=50", "is not MARKETPLACE_NAME=value"),
        ("x-y:MARKETPLACE_A=1", "letters, digits, underscores"),
    ],
)
def test_a_variant_that_cannot_run_is_refused_with_the_item_named(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_variant(text)
