"""marketplace/runtime/batching.py: steps that touch a common row keep the order of the log
across waves; steps on different rows share a wave, one statement per kind."""

from __future__ import annotations

from marketplace.runtime.batching import Step, columns, waves


def test_distinct_keys_make_one_wave_with_one_group_per_kind() -> None:
    steps = [Step("post", (i,), (("listing", i),), first_wins=True) for i in range(5)]
    steps.append(Step("answer", ("m",), (("match", "m"),)))
    assert waves(steps) == [{"post": [(0,), (1,), (2,), (3,), (4,)], "answer": [("m",)]}]


def test_a_later_step_on_the_same_row_waits_for_the_next_wave() -> None:
    steps = [
        Step("post", ("a",), (("listing", "a"),), first_wins=True),
        Step("withdraw", ("a",), (("listing", "a"),)),
        Step("post", ("b",), (("listing", "b"),), first_wins=True),
        Step("update", ("a",), (("listing", "a"),)),
        Step("update", ("b",), (("listing", "b"),)),
    ]
    assert waves(steps) == [
        {"post": [("a",), ("b",)]},
        {"withdraw": [("a",)], "update": [("b",)]},
        {"update": [("a",)]},
    ]


def test_repeated_inserts_share_a_wave_only_when_the_first_wins() -> None:
    repeated = [Step("post", (n,), (("listing", "a"),), first_wins=True) for n in range(3)]
    assert waves(repeated) == [{"post": [(0,), (1,), (2,)]}]
    upserts = [Step("carrier", (n,), (("carrier", "c"),)) for n in range(3)]
    assert waves(upserts) == [{"carrier": [(0,)]}, {"carrier": [(1,)]}, {"carrier": [(2,)]}]
    # An insert after another kind's step on its row comes after that step.
    mixed = [repeated[0], Step("withdraw", ("w",), (("listing", "a"),)), repeated[1]]
    assert waves(mixed) == [{"post": [(0,)]}, {"withdraw": [("w",)]}, {"post": [(1,)]}]


def test_readers_share_a_wave_and_a_writer_of_their_group_waits_for_them() -> None:
    quotes = ("quotes",)
    steps = [
        Step("quote", ("q1",), (("quote", "q1"),), (quotes,)),
        Step("quote", ("q2",), (("quote", "q2"),), (quotes,)),
        Step("award", ("j",), (("job", "j"), quotes)),
        Step("quote", ("q3",), (("quote", "q3"),), (quotes,)),
    ]
    assert waves(steps) == [
        {"quote": [("q1",), ("q2",)]},
        {"award": [("j",)]},
        {"quote": [("q3",)]},
    ]


def test_columns_transposes_rows() -> None:
    assert columns([(1, "a"), (2, "b")]) == [[1, 2], ["a", "b"]]
    assert columns([]) == []
