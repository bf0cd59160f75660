"""The Prometheus registry: exact exposition text, label checks, readiness."""

from __future__ import annotations

import pytest

from marketplace.metrics import Registry


def test_counters_gauges_and_histograms_render_in_the_text_format() -> None:
    r = Registry()
    c = r.counter("x_total", "things", ("group",))
    c.inc(group="a")
    c.inc(2, group="a")
    c.inc(group='b"q')
    g = r.gauge("lag", "behind", ("p",))
    g.set(7, p="0")
    g.set(1.5, p="1")
    g.remove(p="1")
    h = r.histogram("secs", "time", (), buckets=(0.1, 1))
    for v in (0.05, 0.1, 0.5, 3):
        h.observe(v)
    assert r.render() == (
        "# HELP lag behind\n# TYPE lag gauge\n"
        'lag{p="0"} 7\n'
        "# HELP secs time\n# TYPE secs histogram\n"
        'secs_bucket{le="0.1"} 2\nsecs_bucket{le="1"} 3\nsecs_bucket{le="+Inf"} 4\n'
        "secs_sum 3.65\nsecs_count 4\n"
        "# HELP x_total things\n# TYPE x_total counter\n"
        'x_total{group="a"} 3\nx_total{group="b\\"q"} 1\n'
    )
    assert c.get(group="a") == 3
    assert h.count() == 4


def test_wrong_labels_and_negative_counts_are_refused() -> None:
    r = Registry()
    c = r.counter("c_total", "c", ("group",))
    with pytest.raises(ValueError, match="labels"):
        c.inc(topic="t")
    with pytest.raises(ValueError, match="only goes up"):
        c.inc(-1, group="g")
    assert r.counter("c_total", "c", ("group",)) is c
    with pytest.raises(ValueError, match="twice"):
        r.gauge("c_total", "c", ("group",))


def test_readiness_names_what_is_not_ready() -> None:
    r = Registry()
    state = {"ok": False}
    r.readiness["consumer:matcher"] = lambda: state["ok"]
    r.readiness["consumer:projector"] = lambda: True
    assert r.not_ready() == ["consumer:matcher"]
    state["ok"] = True
    assert r.not_ready() == []
