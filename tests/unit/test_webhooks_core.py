"""The pure webhook rules: Standard Webhooks signatures, the retry schedule, target policy."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.core import webhooks as wh

RAW = b"0123456789abcdef0123456789abcdef"
SECRET = wh.secret_from_bytes(RAW)
OTHER = wh.secret_from_bytes(b"another secret of thirty-two b!!")
LOOPBACK = wh.parse_networks("127.0.0.0/8,::1/128")


def test_the_signature_is_hmac_sha256_over_id_dot_timestamp_dot_body() -> None:
    body = b'{"type":"match.proposed"}'
    digest = hmac.new(RAW, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert (
        wh.signature(SECRET, "msg_1", 1700000000, body) == "v1," + base64.b64encode(digest).decode()
    )


def test_the_headers_carry_id_timestamp_and_signature() -> None:
    h = wh.headers([SECRET], "msg_2", 1700000001, b"{}")
    assert h["webhook-id"] == "msg_2"
    assert h["webhook-timestamp"] == "1700000001"
    assert h["webhook-signature"] == wh.signature(SECRET, "msg_2", 1700000001, b"{}")


@given(st.binary(max_size=300), st.text(min_size=1, max_size=40), st.integers(0, 2**40))
def test_during_a_rotation_both_secrets_verify_and_nothing_else_does(
    body: bytes, message_id: str, ts: int
) -> None:
    header = wh.signature_header([OTHER, SECRET], message_id, ts, body)
    assert wh.verify(SECRET, message_id, ts, body, header, now=ts)
    assert wh.verify(OTHER, message_id, ts, body, header, now=ts)
    assert not wh.verify(SECRET, message_id, ts, body + b"x", header, now=ts)
    assert not wh.verify(SECRET, message_id + "x", ts, body, header, now=ts)
    assert not wh.verify(SECRET, message_id, ts + 1, body, header, now=ts)
    third = wh.secret_from_bytes(b"third")
    assert not wh.verify(third, message_id, ts, body, header, now=ts)


def test_an_old_timestamp_fails_verification() -> None:
    header = wh.signature_header([SECRET], "m", 100, b"x")
    assert wh.verify(SECRET, "m", 100, b"x", header, now=400)
    assert not wh.verify(SECRET, "m", 100, b"x", header, now=401)


def test_a_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(wh.SecretError):
        wh.secret_key("whsec_not base64!")
    with pytest.raises(wh.SecretError):
        wh.secret_key("whsec_")


POLICY = wh.RetryPolicy(max_attempts=8, base_s=5, cap_s=3600, jitter=0.5)


@given(st.integers(1, 7), st.floats(0, 1, exclude_max=True))
def test_retries_back_off_exponentially_with_jitter_under_the_cap(
    attempts: int, draw: float
) -> None:
    delay = wh.retry_delay(POLICY, attempts, draw)
    plain = min(3600, 5 * 2 ** (attempts - 1))
    assert delay is not None
    assert plain * 0.5 <= delay <= plain


@given(st.integers(1, 6))
def test_without_jitter_each_retry_waits_twice_as_long_until_the_cap(attempts: int) -> None:
    policy = wh.RetryPolicy(max_attempts=20, base_s=1, cap_s=16, jitter=0.0)
    first, second = wh.retry_delay(policy, attempts, 0.7), wh.retry_delay(policy, attempts + 1, 0.7)
    assert first is not None
    assert second is not None
    assert second == min(16, first * 2)


@given(st.integers(8, 100), st.floats(0, 1, exclude_max=True))
def test_after_the_last_attempt_the_delivery_is_dead(attempts: int, draw: float) -> None:
    assert wh.retry_delay(POLICY, attempts, draw) is None


def test_a_nonsensical_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="attempts"):
        wh.RetryPolicy(max_attempts=0, base_s=1, cap_s=2)
    with pytest.raises(ValueError, match="jitter"):
        wh.RetryPolicy(max_attempts=1, base_s=1, cap_s=2, jitter=2)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("https:///path", "no host"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://example.com/#frag", "fragment"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    target, problem = wh.target_problem(url)
    assert target is None
    assert problem is not None
    assert reason in problem


def test_a_good_url_gives_its_target_with_the_default_port() -> None:
    assert wh.target_problem("https://hooks.example.com/in") == (
        wh.Target("https", "hooks.example.com", 443),
        None,
    )
    assert wh.target_problem("http://[::1]:8081/x")[0] == wh.Target("http", "::1", 8081)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.5", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "not"),  # noqa: S104 - an address under test, nothing binds
        ("224.0.0.1", "not"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    problem = wh.address_problem(ipaddress.ip_address(address), ())
    assert problem is not None
    assert reason in problem


def test_public_addresses_pass_and_the_allow_list_admits_loopback_only() -> None:
    assert wh.address_problem(ipaddress.ip_address("93.184.216.34"), ()) is None
    assert wh.address_problem(ipaddress.ip_address("127.0.0.1"), LOOPBACK) is None
    assert wh.address_problem(ipaddress.ip_address("::1"), LOOPBACK) is None
    assert wh.address_problem(ipaddress.ip_address("10.0.0.1"), LOOPBACK) is not None


def test_a_host_is_refused_when_any_of_its_addresses_is() -> None:
    public, private = ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.1")
    assert wh.addresses_problem([public], ()) is None
    assert wh.addresses_problem([public, private], ()) is not None
    assert wh.addresses_problem([], ()) == "the host does not resolve"


def test_the_allow_list_is_checked_when_read() -> None:
    with pytest.raises(ValueError, match="not an IP network"):
        wh.parse_networks("127.0.0.0/8,localhost")
