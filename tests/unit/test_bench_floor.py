"""The transport floor's own arithmetic (loadtests/bench_floor.py): the shares per listing, the
records' sizes, the signatures its sender makes and its receiver checks, and the sustained rate
and CPU per listing it derives from a round."""

from __future__ import annotations

import argparse
import time

import orjson

from loadtests import bench_floor as floor
from marketplace.core import webhooks as signing


def test_shares_spread_evenly_and_add_up() -> None:
    n = 10_000
    assert sum(floor.share(i, 0.64) for i in range(n)) == int(n * 0.64)
    assert {floor.share(i, 0.64) for i in range(n)} == {0, 1}
    assert all(floor.share(i, 2.0) == 2 for i in range(100))
    assert sum(floor.webhooks_of(i, 0.64, 2.0) for i in range(n)) == 2 * int(n * 0.64)


def test_padded_records_have_the_size_asked_and_stay_json() -> None:
    value = floor.padded(b'{"listing":"17"', floor.PROPOSAL_BYTES)
    assert len(value) == floor.PROPOSAL_BYTES
    assert orjson.loads(value)["listing"] == "17"


def test_the_senders_signature_is_what_the_receiver_accepts() -> None:
    body = floor.padded(b'{"notification":"3.1"', floor.NOTIFICATION_BYTES)
    now = int(time.time())
    headers = signing.headers([floor.secret_of(3)], "3.1.2", now, body)
    assert signing.verify(floor.secret_of(3), "3.1.2", now, body, headers["webhook-signature"], now)
    assert not signing.verify(
        floor.secret_of(4), "3.1.2", now, body, headers["webhook-signature"], now
    )


def test_a_rounds_figures_count_completions_in_the_window_and_cpu_per_listing() -> None:
    args = argparse.Namespace(warm_s=1.0, window_s=2.0, concurrency=4)
    start = 1000.0
    # Listings 0..9 taken at start + 0.25 * n; with 0.5 proposals per listing the odd ones have
    # two webhooks each, which arrive 0.5 s after their 202.
    accepted = [(n, start + 0.25 * n) for n in range(10)]
    with_hooks = [n for n in range(10) if floor.webhooks_of(n, 0.5, 2.0)]
    done = [(n, start + 0.25 * n + 0.5) for n in with_hooks]
    sent = {
        "start": start,
        "sent": 10,
        "dropped": 0,
        "statuses": {"202": 10},
        "accepted": accepted,
        "ack_ms": {},
    }
    received = {"webhooks": 2 * len(done), "bad_signatures": 0, "done": done}
    load = {"load_1m": 1.0, "others_cores": 0.0}
    out = floor.figures(
        "max",
        "ours",
        0.0,
        args,
        sent,
        received,
        2 * len(done),
        0,
        {"api": 0.01, "broker": 0.02},
        load,
        load,
        0.5,
        2.0,
    )
    complete = {n: t for n, t in accepted if n not in with_hooks} | dict(done)
    in_window = [n for n, t in complete.items() if start + 1.0 <= t < start + 3.0]
    assert out["sustained_listings_per_s"] == len(in_window) / 2.0
    assert out["accepted_in_window_per_s"] == 6 / 2.0  # listings 4 to 9
    assert out["cpu_ms_per_listing"] == {"api": 1.0, "broker": 2.0, "total": 3.0}
    assert out["webhooks_received"] == out["webhooks_expected"]
