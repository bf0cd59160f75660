"""The deal room's API refusals as its OpenAPI document lists them (#21 item 2): a multipart body
that is not what its header says is 400 malformed-body (aiohttp's parser raised, a 500 before);
a file refused by its content is 422 attachment-refused, the schema's limits 422 validation;
roles without a place in any room 403; a repeated read receipt with a bad Idempotency-Key 400."""

from __future__ import annotations

import aiohttp
import pytest

from marketplace.settings import Settings
from producers.api.openapi import PROBLEM_BASE, document
from producers.web.app import create_service
from tests.integration.api_helpers import eventually, register, running_api
from tests.integration.test_deal_room import confirmed_match

pytestmark = pytest.mark.integration


def documented(method: str, path: str, status: int) -> list[str]:
    """The problem types the document gives for this answer of this operation."""
    answer = document()["paths"][path][method]["responses"][str(status)]
    schema = answer["content"]["application/problem+json"]["schema"]["allOf"][1]
    return [t.removeprefix(PROBLEM_BASE) for t in schema["properties"]["type"]["enum"]]


async def test_refusals_of_the_deal_room_are_the_documented_ones(settings: Settings) -> None:
    seller = await register(settings, "sme", "Refusals Seller OOD")
    buyer = await register(settings, "sme", "Refusals Buyer AB")
    auditor = await register(settings, "auditor", "Refusals Auditor")
    post = "/v1/matches/{id}/messages"
    async with running_api(settings, create_service) as client:
        match_id, _job = await confirmed_match(settings, seller, buyer)
        url = f"/v1/matches/{match_id}/messages"

        async def room_open() -> bool:
            return (await client.get(url, headers=seller.auth)).status == 200

        await eventually(room_open, 30)

        async def problem(r: aiohttp.ClientResponse, status: int) -> str:
            assert r.status == status, await r.text()
            kind: str = (await r.json())["type"].removeprefix(PROBLEM_BASE)
            assert kind in documented("post" if r.method == "POST" else "get", post, status)
            return kind

        # A part header with a control character in it.
        boundary = "b0undary"
        raw = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="te\x7fxt"\r\n\r\nhello\r\n'
            f"--{boundary}--\r\n"
        ).encode()
        headers = seller.auth | {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        r = await client.post(url, data=raw, headers=headers)
        assert await problem(r, 400) == "malformed-body"
        # multipart without a boundary.
        headers = seller.auth | {"Content-Type": "multipart/form-data"}
        r = await client.post(url, data=b"--x\r\n", headers=headers)
        assert await problem(r, 400) == "malformed-body"
        # A file that is no JPEG, PNG or PDF by its first bytes: a rule, not the schema.
        form = aiohttp.FormData()
        form.add_field("text", "see the photo")
        form.add_field("attachment", b"GIF89a...", filename="x.png", content_type="image/png")
        r = await client.post(url, data=form, headers=seller.auth)
        assert await problem(r, 422) == "attachment-refused"
        # A part named `attachment` without a filename is a file all the same (not a field to
        # ignore): a plain value there is judged by its content and refused, naming it.
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("text", "see the photo")
        form.add_field("attachment", "0")
        r = await client.post(url, data=form, headers=seller.auth)
        assert await problem(r, 422) == "attachment-refused"
        assert (await r.json())["errors"][0]["field"] == "attachments[0]"
        # Over the schema's maxLength: the schema's own refusal.
        r = await client.post(url, json={"text": "x" * 4001}, headers=seller.auth)
        assert await problem(r, 422) == "validation"
        # Blank: allowed by the schema, refused by a rule.
        r = await client.post(url, json={"text": "   "}, headers=seller.auth)
        assert await problem(r, 422) == "unprocessable-content"
        # An auditor has no place in any room: 403 as on every route of other roles.
        r = await client.get(url, headers=auditor.auth)
        assert r.status == 403
        # A read receipt with an Idempotency-Key out of bounds.
        r = await client.post(
            f"{url}/no-such-message/read", headers=seller.auth | {"Idempotency-Key": "k" * 201}
        )
        assert r.status == 400
        r = await client.post(f"{url}/no-such-message/read", headers=seller.auth)
        assert r.status == 404
