"""The audit chain's format, the checks that find damage, and checkpoint signatures."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from marketplace.audit.chain import GENESIS, ChainCheck, Entry, b64, entry_from_json, link, refs
from marketplace.audit.signing import (
    Head,
    SigningKeyError,
    checkpoint_body,
    create_key,
    heads_of,
    load_key,
    parse_public_key,
    public_bytes,
    sign,
    signature_valid,
)


def entry(offset: int, value: bytes = b'{"n": 1}') -> Entry:
    return Entry(
        "market.listings", 2, offset, 1_700_000_000_000 + offset, b"1501", (("ce_id", b"x"),), value
    )


def chain(n: int) -> list[tuple[Entry, bytes, bytes]]:
    rows, prev = [], GENESIS
    for i in range(n):
        e = entry(i, f'{{"n": {i}}}'.encode())
        h = link(prev, e)
        rows.append((e, prev, h))
        prev = h
    return rows


def check(rows: list[tuple[Entry, bytes, bytes]]) -> list[str]:
    c = ChainCheck("market.listings", 2)
    return [str(f) for e, p, h in rows if (f := c.feed(e, p, h)) is not None]


def test_the_canonical_form_is_fixed() -> None:
    # The documented format: [1, topic, partition, offset, ts, key, headers, value], base64 bytes.
    assert entry(7).canonical() == (
        b'[1,"market.listings",2,7,1700000000007,"MTUwMQ==",[["ce_id","eA=="]],"eyJuIjogMX0="]'
    )
    assert link(GENESIS, entry(7)) != link(GENESIS, entry(8))


@given(
    st.binary(max_size=64),
    st.binary(max_size=64),
    st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=8)), max_size=4),
)
def test_every_field_is_covered_by_the_hash(
    key: bytes, value: bytes, headers: list[tuple[str, bytes | None]]
) -> None:
    e = Entry("t", 0, 1, 2, key, tuple(headers), value)
    h = link(GENESIS, e)
    assert link(GENESIS, dataclasses.replace(e, value=value + b"x")) != h
    assert link(GENESIS, dataclasses.replace(e, key=key + b"x")) != h
    assert link(GENESIS, dataclasses.replace(e, offset=2)) != h
    assert link(GENESIS, dataclasses.replace(e, headers=(*headers, ("h", b"")))) != h
    assert link(b"\x01" * 32, e) != h
    # The exported JSON form reads back to the same entry.
    assert entry_from_json("t", 0, 1, 2, b64(e.key), e.headers_json(), b64(e.value)) == e


def test_an_intact_chain_has_no_findings() -> None:
    assert check(chain(20)) == []


def test_a_changed_payload_is_pinpointed() -> None:
    rows = chain(10)
    e, p, h = rows[4]
    rows[4] = (dataclasses.replace(e, value=b'{"n": 5}'), p, h)
    assert check(rows) == [
        "market.listings/2@4: altered: the record's contents do not match its stored hash"
    ]


def test_a_removed_record_breaks_the_next_link() -> None:
    rows = chain(10)
    del rows[6]
    (finding,) = check(rows)
    assert finding.startswith("market.listings/2@7: broken link")
    assert "offset 5" in finding


def test_two_swapped_records_are_found_where_the_order_breaks() -> None:
    rows = chain(10)
    rows[3], rows[4] = rows[4], rows[3]
    findings = check(rows)
    assert findings[0].startswith("market.listings/2@4: broken link")


def test_a_chain_must_start_at_genesis_unless_anchored() -> None:
    rows = chain(10)[3:]
    assert check(rows)[0].startswith("market.listings/2@3: broken link")
    anchored = ChainCheck("market.listings", 2, anchored=True)
    assert [f for e, p, h in rows if (f := anchored.feed(e, p, h))] == []


def test_refs_collects_ids_for_history() -> None:
    data = {
        "match_id": "m1",
        "offer_id": "o1",
        "bidders": ["c1", "c2"],
        "terms": {"quote_id": "q"},
        "amount": 3,
    }
    assert refs(data, ("subject",)) == ["c1", "c2", "m1", "o1", "q", "subject"]
    assert refs(None) == []


def test_checkpoints_sign_exactly_their_body(tmp_path: Path) -> None:
    key = create_key(tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert public_bytes(load_key(tmp_path / "k.pem")) == public_bytes(key)
    heads = [Head("b", 1, 9, b"\x02" * 32), Head("a", 0, 3, b"\x01" * 32)]
    body = checkpoint_body(datetime(2026, 11, 23, tzinfo=UTC), heads)
    assert [h.topic for h in heads_of(body)] == ["a", "b"]
    signature = sign(key, body)
    assert signature_valid(public_bytes(key), body, signature)
    assert not signature_valid(
        public_bytes(key), body.replace(b'"offset":9', b'"offset":8'), signature
    )
    other = Ed25519PrivateKey.generate()
    assert not signature_valid(public_bytes(other), body, signature)
    with pytest.raises(FileExistsError):
        create_key(tmp_path / "k.pem")


def test_bad_keys_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="not found"):
        load_key(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(SigningKeyError, match="not a PEM private key"):
        load_key(tmp_path / "junk.pem")
    with pytest.raises(SigningKeyError, match="32 bytes"):
        parse_public_key("abcd")
    assert parse_public_key("ab" * 32) == b"\xab" * 32
