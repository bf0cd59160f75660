"""What rendering one notification's e-mail costs (the mail inbox's work per message and person,
consumers/mailer.py), with the project's header registry (each header class made once,
`marketplace.mail.render._Headers`) against the standard library's (a class made per header set
or read), in the same run and on the same notifications.

    python -m loadtests.bench_mail_render [--messages 2000] [--repeat 5]

Each round renders `--messages` notifications (the kinds of `render.HEADLINES` in turn, the
three languages in turn, a facilitator's copy every tenth) once with each registry, the order
alternating between rounds; before the clock, every message is checked to be the same bytes
under both. Reports the median microseconds per message of each, their ratio and the CPU
seconds of this process per round. Writes loadtests/reports/mail-render-<timestamp>.json and
.html."""

from __future__ import annotations

import argparse
import email.policy
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from loadtests.report import commit, machine, write_report
from marketplace.mail import render
from marketplace.settings import Settings

STANDARD = email.policy.SMTP.clone(max_line_length=998)  # the policy before the cache


def notifications(count: int) -> list[tuple[render.Recipient, dict[str, Any]]]:
    kinds = sorted(render.HEADLINES)
    out = []
    for n in range(count):
        to = render.Recipient(
            person_id=str(uuid.UUID(int=n + 1)),
            email=f"person{n}@firm{n % 400}.example",
            name=("Anna Lindqvist", "Мария Петрова", "Erik Öberg")[n % 3],
            locale=("en", "bg", "sv")[n % 3],
            zone=("Europe/Sofia", "Europe/Stockholm")[n % 2],
        )
        data: dict[str, Any] = {
            "match_id": str(uuid.UUID(int=10**6 + n)),
            "material_code": ("150102", "040222", "020304")[n % 3],
            "quantity_t": 2.5 + n % 7,
            "price_per_t": 80.0 + n % 40,
            "distance_km": 12.0 + n % 90,
        }
        if n % 10 == 0:
            data["on_behalf_of"] = f"Firm {n % 400}"
        out.append((to, {"kind": kinds[n % len(kinds)], "data": data}))
    return out


def render_all(
    settings: Settings, key: bytes, work: list[tuple[render.Recipient, dict[str, Any]]]
) -> list[bytes]:
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    return [
        render.notification(
            settings,
            key,
            to,
            notification_id=str(uuid.UUID(int=2 * 10**6 + n)),
            kind=item["kind"],
            data=item["data"],
            issued_at=at,
        )[1]
        for n, (to, item) in enumerate(work)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not 0 < args.messages <= 100_000 or not 1 <= args.repeat <= 9:
        parser.error("keep it bounded: messages 1..100000, repeat 1..9")
    settings = Settings.from_env()
    key = b"bench-link-key".ljust(32, b".")
    work = notifications(args.messages)
    cached = render.POLICY
    policies = {"cached registry": cached, "standard registry": STANDARD}
    made: dict[str, list[bytes]] = {}
    for name, policy in policies.items():
        render.POLICY = policy
        made[name] = render_all(settings, key, work)
    same = made["cached registry"] == made["standard registry"]
    if not same:
        raise SystemExit("the two registries made different bytes")
    at_start = machine()
    per_message: dict[str, list[float]] = {name: [] for name in policies}
    cpu_s: dict[str, list[float]] = {name: [] for name in policies}
    names = list(policies)
    for n in range(args.repeat):
        for name in names[n % 2 :] + names[: n % 2]:
            render.POLICY = policies[name]
            wall, spent = time.perf_counter(), time.process_time()
            render_all(settings, key, work)
            cpu_s[name].append(round(time.process_time() - spent, 3))
            per_message[name].append((time.perf_counter() - wall) / args.messages * 1e6)
            print(f"round {n + 1} {name:<18} {per_message[name][-1]:8.1f} us/message")
    render.POLICY = cached
    medians = {name: statistics.median(v) for name, v in per_message.items()}
    ratio = medians["standard registry"] / medians["cached registry"]
    print(f"cached registry {ratio:.2f}x the standard one's rate; bytes equal: {same}")
    result = {
        "messages": args.messages,
        "repeat": args.repeat,
        "commit": commit(),
        "machine_at_start": at_start,
        "machine_at_end": machine(),
        "bytes_equal": same,
        "us_per_message": per_message,
        "median_us_per_message": medians,
        "process_cpu_s_per_round": cpu_s,
        "rate_ratio_cached_over_standard": ratio,
    }
    paths = write_report(
        "mail-render",
        title="Rendering a notification's e-mail: header classes made once or per header",
        summary=(
            f"{args.messages:,} messages per round, {args.repeat} rounds interleaved, one"
            f" process (load average {at_start['load_1m']:.2f} at the start); the same bytes"
            f" from both: {same}."
        ),
        data=result,
        headers=["header registry", "median us/message", "rounds (us/message)"],
        rows=[
            [name, f"{medians[name]:.1f}", " ".join(f"{x:.0f}" for x in per_message[name])]
            for name in policies
        ],
    )
    print(f"report: {paths[0]} and {paths[1].name}")


if __name__ == "__main__":
    main()
