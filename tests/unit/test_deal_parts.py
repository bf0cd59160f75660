"""The deal room's checks that need no stack (#22): a file's type from its first bytes, the
limits, and a scanner plugged in behind the one-method interface."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from producers.api.deals import (
    MAX_FILE_BYTES,
    SCANNER,
    NoScanner,
    Scanner,
    Upload,
    checked,
    sniff,
)
from producers.api.problems import Problem

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


def test_the_type_is_read_from_the_first_bytes_never_the_name() -> None:
    assert sniff(JPEG) == "image/jpeg"
    assert sniff(PNG) == "image/png"
    assert sniff(PDF) == "application/pdf"
    for other in (b"plain text named report.pdf", b"GIF89a", b"PK\x03\x04", b"", b" %PDF-1.4"):
        assert sniff(other) is None


def request_with(scanner: Scanner | None = None) -> web.Request:
    app = web.Application()
    if scanner is not None:
        app[SCANNER] = scanner
    return make_mocked_request("POST", "/", app=app)


def upload(name: str, content: bytes, size: int | None = None) -> Upload:
    return Upload(name, content, len(content) if size is None else size)


async def test_the_limits_name_the_field() -> None:
    request = request_with()
    typed = await checked(request, "see the photo", [upload("bales.jpg", PNG)])
    assert [kind for _, kind in typed] == ["image/png"]
    cases = [
        ("x" * 4001, [], "text"),
        ("  ", [], "text"),
        ("", [upload("r.pdf", b"words")], "attachments[0]"),
        ("", [upload("big.pdf", PDF, MAX_FILE_BYTES + 1)], "attachments[0]"),
        ("", [upload("empty.png", b"")], "attachments[0]"),
        ("", [upload(f"{i}.pdf", PDF) for i in range(4)], "attachments"),
    ]
    for text, files, field in cases:
        with pytest.raises(Problem) as refused:
            await checked(request, text, files)
        assert refused.value.status == 422
        assert refused.value.errors[0][0] == field, (text[:10], field)


class Refusing:
    async def scan(self, name: str, media_type: str, content: bytes) -> str | None:
        return "EICAR test signature" if b"EICAR" in content else None


async def test_a_plugged_in_scanner_refuses_next_to_the_file() -> None:
    assert await NoScanner().scan("a.pdf", "application/pdf", PDF + b"EICAR") is None
    request = request_with(Refusing())
    await checked(request, "", [upload("clean.pdf", PDF)])
    with pytest.raises(Problem) as refused:
        await checked(request, "", [upload("clean.pdf", PDF), upload("bad.pdf", PDF + b"EICAR")])
    assert refused.value.errors == [
        ("attachments[1]", "bad.pdf was refused by the virus scanner: EICAR test signature")
    ]
