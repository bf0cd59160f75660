from __future__ import annotations

import msgspec
import pytest

from marketplace.partners import parse_key
from producers.api.bodies import OfferIn
from producers.api.problems import from_validation
from producers.api.ratelimit import RateLimiter


def test_rate_limiter_allows_the_burst_then_asks_to_wait() -> None:
    limiter = RateLimiter(rate_per_s=2, burst=3)
    assert [limiter.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("k", 0.0)
    assert wait == pytest.approx(0.5)
    assert limiter.retry_after_header(wait) == "1"
    assert limiter.take("other", 0.0) == 0.0  # keys do not share a bucket
    assert limiter.take("k", 0.5) == 0.0  # one token back after 1/rate seconds


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
