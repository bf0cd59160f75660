"""Webhook rules: Standard Webhooks signatures, the retry schedule, and which targets may be
called. Pure: times, random draws and resolved addresses come in as arguments."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SIGNATURE_VERSION = "v1"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# Signatures (https://www.standardwebhooks.com) ---------------------------------------------------


class SecretError(ValueError):
    """Not a webhook signing secret (whsec_ followed by base64)."""


def secret_from_bytes(raw: bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(raw).decode()


def secret_key(secret: str) -> bytes:
    body = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(body, validate=True)
    except ValueError:
        raise SecretError("a webhook secret is whsec_ followed by base64") from None
    if not key:
        raise SecretError("a webhook secret cannot be empty")
    return key


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_header(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """One signature per valid secret, space-separated: during a rotation's overlap a receiver
    that still knows only the old secret verifies the old signature."""
    return " ".join(signature(s, message_id, timestamp, body) for s in secrets)


def headers(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, message_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    message_id: str,
    timestamp: int,
    body: bytes,
    header: str,
    now: int,
    tolerance_s: int = 300,
) -> bool:
    """What a receiver does: the timestamp is recent and one of the signatures matches."""
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in header.split())


# The retry schedule --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    cap_s: float
    jitter: float = 0.5  # up to this fraction of the delay is randomised

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError("retry policy: attempts >= 1, base > 0, cap >= base")
        if not 0 <= self.jitter <= 1:
            raise ValueError("retry policy: jitter is a fraction between 0 and 1")


def retry_delay(policy: RetryPolicy, attempts: int, draw: float) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones, or None: dead-letter it.

    The delay doubles from `base_s` up to `cap_s`; `draw` in [0, 1) takes up to `jitter` of it
    away, so endpoints that failed together do not retry in lockstep."""
    if attempts >= policy.max_attempts:
        return None
    delay = min(policy.cap_s, policy.base_s * 2.0 ** (attempts - 1))
    return delay * (1 - policy.jitter * draw)


# Which targets may be called -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int


def parse_networks(text: str) -> tuple[Network, ...]:
    """The operator's allow-list: comma-separated CIDRs, e.g. "127.0.0.0/8,::1/128"."""
    out = []
    for part in text.split(","):
        if part.strip():
            try:
                out.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not an IP network (CIDR)") from None
    return tuple(out)


def target_problem(url: str) -> tuple[Target | None, str | None]:
    """The URL's target, or why it cannot be a webhook target (before any address is known)."""
    if len(url) > 2000:
        return None, "the URL is longer than 2000 characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return None, f"not a valid URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return None, "only http and https URLs can receive webhooks"
    if not parts.hostname:
        return None, "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return None, "credentials in the URL are not accepted; verify the signature instead"
    if parts.fragment:
        return None, "the URL cannot have a #fragment"
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default), None


def literal_address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def address_problem(address: Address, allowed: Iterable[Network]) -> str | None:
    """Why a target address is refused, or None. Private, loopback, link-local and other
    non-public addresses are refused unless an allow-listed network holds them."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address.version == n.version and address in n for n in allowed):
        return None
    if address.is_multicast or address.is_unspecified:
        return f"{address} is not a unicast public address"
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_private:
        return f"{address} is a private address"
    if address.is_reserved or not address.is_global:
        return f"{address} is not a public address"
    return None


def addresses_problem(addresses: Sequence[Address], allowed: Iterable[Network]) -> str | None:
    """A host is callable when it resolves and every address it resolves to is allowed (an
    attacker's DNS could otherwise hand out a public and a private address)."""
    if not addresses:
        return "the host does not resolve"
    allowed = tuple(allowed)
    for address in addresses:
        problem = address_problem(address, allowed)
        if problem is not None:
            return problem
    return None
