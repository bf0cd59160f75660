"""Derived ids are the name-based UUIDs `uuid.uuid5` gives (written out in marketplace/core/ids.py
for speed): ids already on the topics and in the tables stay what they are."""

from __future__ import annotations

import random
import uuid

from marketplace.core.ids import DERIVED_NAMESPACE, derived_id


def test_derived_ids_are_uuid5_of_the_cause_and_index() -> None:
    rng = random.Random(5)
    alphabet = "0123456789abcdef-/:é€ "
    for _ in range(20_000):
        cause = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 48)))
        index = rng.randrange(0, 10_000)
        got = derived_id(cause, index)
        assert got == str(uuid.uuid5(DERIVED_NAMESPACE, f"{cause}/{index}"))
        assert uuid.UUID(got).version == 5


def test_a_known_id() -> None:
    # Fixed by decision 3: replay must give the ids already published.
    assert derived_id("e1", 0) == "a46a96c3-807c-5798-af80-8e49b301f856"
    assert derived_id("e1") == derived_id("e1", 0) != derived_id("e1", 1)
