from __future__ import annotations

import msgspec
import pytest

from marketplace.partners import parse_key
from producers.api.bodies import OfferIn
from producers.api.problems import from_validation
from producers.api.ratelimit import RateLimiter


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    # The buckets themselves are in PostgreSQL: tests/integration/test_api_rate_limit.py.
    assert RateLimiter.retry_after_header(0.01) == "1"
    assert RateLimiter.retry_after_header(1.0) == "1"
    assert RateLimiter.retry_after_header(4.2) == "5"


def test_validation_errors_name_the_field() -> None:
    with pytest.raises(msgspec.ValidationError) as err:
        msgspec.json.decode(
            b'{"material": {"code": "150102", "description": "x"},'
            b' "location": {"lat": 0, "lon": 200}, "terms": {}}',
            type=OfferIn,
        )
    problem = from_validation(err.value)
    assert problem.status == 422
    assert problem.field == "location.lon"
    assert "<= 180" in problem.detail


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("mk_abc123_s3cr3t_with_underscores", ("abc123", "s3cr3t_with_underscores")),
        ("mk__secret", None),
        ("xx_abc_secret", None),
        ("mk_abc", None),
        ("", None),
    ],
)
def test_api_key_format(key: str, parsed: tuple[str, str] | None) -> None:
    assert parse_key(key) == parsed
