"""Invoice numbers per issuer without gaps, against the real PostgreSQL (migration 0024):
concurrent invoices of several issuers, some failing after their number was taken, leave each
issuer with exactly 1..n; issuing a deal's invoice again takes no number."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid
from collections.abc import Callable

import asyncpg
import pytest

from marketplace.core.invoice import build_invoice, invoice_number
from marketplace.partners import (
    InvoiceSeriesInUse,
    IssuedInvoice,
    issue_invoice,
    start_invoice_series,
)
from tests.invoice_cases import domestic_sale

pytestmark = pytest.mark.integration


class Refused(Exception):
    pass


def builder(*, fail: bool = False) -> Callable[[int], bytes]:
    def build(number: int) -> bytes:
        if fail:
            # After the number was taken: the transaction must give it back.
            raise Refused(number)
        return build_invoice(dataclasses.replace(domestic_sale(), number=invoice_number(number)))

    return build


async def issue(
    pool: asyncpg.Pool, issuer: str, match: str, *, fail: bool = False
) -> IssuedInvoice | None:
    async with pool.acquire() as conn:
        try:
            return await issue_invoice(
                conn,
                issuer_id=issuer,
                customer_id="customer",
                match_id=match,
                kind="material",
                build=builder(fail=fail),
            )
        except Refused:
            return None


async def test_concurrent_issuers_get_consecutive_numbers_without_gaps(
    pool: asyncpg.Pool,
) -> None:
    issuers = [f"issuer-{uuid.uuid4()}" for _ in range(3)]
    attempts = [
        (issuer, f"match-{uuid.uuid4()}", i % 4 == 3)  # every fourth fails after its number
        for i in range(12)
        for issuer in issuers
    ]
    issued = await asyncio.gather(*(issue(pool, *a[:2], fail=a[2]) for a in attempts))

    assert sum(r is None for r in issued) == 9
    async with pool.acquire() as conn:
        for issuer in issuers:
            rows = await conn.fetch(
                "SELECT number, xml, sha256 FROM invoices WHERE issuer_id = $1 ORDER BY number",
                issuer,
            )
            assert [r["number"] for r in rows] == list(range(1, 10)), issuer
            for r in rows:
                # The number is in the XML that was recorded, and the digest is the XML's.
                assert f"<cbc:ID>{r['number']:010d}</cbc:ID>".encode() in r["xml"]
                assert hashlib.sha256(r["xml"]).hexdigest() == r["sha256"]
            last = await conn.fetchval(
                "SELECT last_number FROM invoice_numbers WHERE issuer_id = $1", issuer
            )
            assert last == 9
    assert all(r.new for r in issued if r is not None)


async def test_a_rolled_back_invoice_gives_its_number_back(pool: asyncpg.Pool) -> None:
    issuer = f"issuer-{uuid.uuid4()}"
    first = await issue(pool, issuer, f"match-{uuid.uuid4()}")
    assert first is not None
    assert first.number == 1

    class Later(Exception):
        pass

    taken: list[int] = []

    async def fails_after_recording() -> None:
        async with pool.acquire() as conn, conn.transaction():
            issued = await issue_invoice(
                conn,
                issuer_id=issuer,
                customer_id="customer",
                match_id=f"match-{uuid.uuid4()}",
                kind="material",
                build=builder(),
            )
            taken.append(issued.number)
            raise Later

    # The caller's own transaction fails after the invoice was recorded inside it.
    with pytest.raises(Later):
        await fails_after_recording()
    assert taken == [2]

    second = await issue(pool, issuer, f"match-{uuid.uuid4()}")
    assert second is not None
    assert second.number == 2


async def test_issuing_a_deals_invoice_again_returns_it_and_takes_no_number(
    pool: asyncpg.Pool,
) -> None:
    issuer, match = f"issuer-{uuid.uuid4()}", f"match-{uuid.uuid4()}"
    first, again = await asyncio.gather(issue(pool, issuer, match), issue(pool, issuer, match))
    assert first is not None
    assert again is not None
    assert {first.new, again.new} == {True, False}
    assert (first.number, first.sha256) == (again.number, again.sha256)
    following = await issue(pool, issuer, f"match-{uuid.uuid4()}")
    assert following is not None
    assert following.number == 2


async def test_an_issuer_may_start_its_series_apart_until_its_first_invoice(
    pool: asyncpg.Pool,
) -> None:
    issuer = f"issuer-{uuid.uuid4()}"
    async with pool.acquire() as conn:
        await start_invoice_series(conn, issuer, 9_000_000_001)
        await start_invoice_series(conn, issuer, 8_000_000_001)  # changed before any invoice
    issued = await asyncio.gather(*(issue(pool, issuer, f"match-{uuid.uuid4()}") for _ in range(3)))
    assert sorted(i.number for i in issued if i is not None) == [
        8_000_000_001,
        8_000_000_002,
        8_000_000_003,
    ]
    async with pool.acquire() as conn:
        xml = await conn.fetchval(
            "SELECT xml FROM invoices WHERE issuer_id = $1 AND number = 8000000003", issuer
        )
        assert b"<cbc:ID>8000000003</cbc:ID>" in xml
        with pytest.raises(InvoiceSeriesInUse):
            await start_invoice_series(conn, issuer, 1)
        assert (
            await conn.fetchval(
                "SELECT last_number FROM invoice_numbers WHERE issuer_id = $1", issuer
            )
            == 8_000_000_003
        )
