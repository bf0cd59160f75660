"""The auditor's trimmed hot path gives exactly what the straightforward code gave: the ids an
event mentions, base64, the canonical encoding and the hash, with the headers encoded once."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from loadtests.bench_audit import refs_before
from marketplace.audit import store
from marketplace.audit.chain import GENESIS, Entry, b64, link, refs

# The definition is the straightforward code the auditor had before it was trimmed, kept in the
# benchmark that compares the two.
refs_reference = refs_before


NAMES = st.sampled_from(
    ["id", "offer_id", "owner_id", "match_ids", "bidders", "data", "terms", "x_id_", "ids", "n"]
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
)
JSON = st.recursive(LEAVES, lambda inner: st.dictionaries(NAMES, inner, max_size=4), max_leaves=30)


@given(JSON, st.lists(st.one_of(st.none(), st.text(max_size=4)), max_size=2))
def test_refs_are_what_the_definition_gives(data: Any, extra: list[str | None]) -> None:
    assert refs(data, tuple(extra)) == refs_reference(data, tuple(extra))


def test_refs_stop_three_objects_deep() -> None:
    deep = {"a": {"b": {"c": {"d_id": "4", "e": {"f_id": "5"}}, "c_id": "3"}}, "x_ids": ["1", 2]}
    assert refs(deep) == ["1", "3", "4"] == refs_reference(deep)


@given(st.one_of(st.none(), st.binary(max_size=200)))
def test_b64_is_standard_base64(data: bytes | None) -> None:
    assert b64(data) == (None if data is None else base64.b64encode(data).decode("ascii"))


@given(
    st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=20)))),
    st.one_of(st.none(), st.binary(max_size=50)),
)
def test_headers_computed_once_give_the_same_hash_and_row(
    headers: list[tuple[str, bytes | None]], value: bytes | None
) -> None:
    e = Entry("t", 0, 5, 1_700_000_000_000, b"k", tuple(headers), value)
    once = e.headers_json()
    assert link(GENESIS, e, once) == link(GENESIS, e)
    h = link(GENESIS, e)
    assert store.row(e, GENESIS, h, once) == store.row(e, GENESIS, h)
