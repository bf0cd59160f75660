"""A request accepts codes of its own material family only (#17 item 2): the API's check names
each field and the families."""

from __future__ import annotations

import orjson
import pytest

from producers.api.listings import check_accepts
from producers.api.problems import Problem


def test_codes_of_the_requests_own_family_pass() -> None:
    check_accepts("200139", ())
    check_accepts("200139", ("150102", "020104", "191204"))
    check_accepts("020106", ("020304", "020501", "200108"))


def test_a_code_of_another_family_is_refused_naming_the_field_and_the_families() -> None:
    with pytest.raises(Problem) as caught:
        check_accepts("200139", ("150102", "150101", "170405"))
    problem = caught.value
    assert problem.status == 422
    assert problem.kind == "accepts-other-family"
    assert "plastics" in problem.detail
    assert "metals, paper" in problem.detail
    assert [f for f, _ in problem.errors] == ["accepts_codes[1]", "accepts_codes[2]"]
    assert "paper" in problem.errors[0][1]
    assert "metals" in problem.errors[1][1]
    body = orjson.loads(problem.response("/v1/requests").body)  # type: ignore[arg-type]
    assert body["type"].endswith("/accepts-other-family")
    assert body["errors"][0]["field"] == "accepts_codes[1]"
