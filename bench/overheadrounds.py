"""Figure (g)'s rounds: every arm of bench/overhead.py, pair by pair in ABC CBA order, kept
for the figures (bench/overheadfigures.py) and results.jsonl."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .overhead import ARMS, Arm, Context, LogArm, app_arm, log_arm


def orders(pairs: int) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Pair numbers with the order of their arms: forwards in even pairs, backwards in odd
    ones (ABC CBA), so drifts of the machine fall on every arm alike."""
    for pair in range(pairs):
        yield pair, (ARMS if pair % 2 == 0 else ARMS[::-1])


@dataclass
class Measured:
    """Every arm of figure (g), per pair: arm name -> its figures."""

    apps: dict[str, list[dict[str, Arm]]] = field(default_factory=dict)
    logs: list[dict[str, LogArm]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        def arm(a: Arm) -> dict[str, Any]:
            return {
                "rate": a.wrk.rate,
                "p50": a.wrk.p50,
                "p99": a.wrk.p99,
                "light_p50": a.light.p50,
                "light_p99": a.light.p99,
                "settled": a.settled,
                "light_es": round(a.light_es, 3),
                **({"light_idle_p99": a.light_idle.p99} if a.light_idle else {}),
                "cpu_us": {k: round(a.cpu_us_per_request(k), 2) for k in a.cpu},
                "stats": a.stats,
                **({"events_per_batch": round(a.events_per_batch, 1)} if a.batches else {}),
            }

        return {
            "apps": {
                kind: [{name: arm(a) for name, a in pair.items()} for pair in pairs]
                for kind, pairs in self.apps.items()
            },
            "logs": [{name: a.rate for name, a in pair.items()} for pair in self.logs],
        }


def measure(
    ctx: Context,
    pairs: int,
    seconds: float,
    light_seconds: float,
    connections: int,
    records: int,
) -> Measured:
    measured = Measured()
    ctx.say(f"(g) warming up: an agent arm of {seconds:g} s, not counted")
    app_arm(ctx, "asgi", "hq", seconds, 1, connections)
    for kind in ("asgi", "wsgi"):
        ctx.say(
            f"(g) {kind}: {pairs} rounds of {'/'.join(ARMS)} (ABC CBA), each arm "
            f"{light_seconds:g} s of paced wrk, then {seconds:g} s of wrk -c{connections}"
        )
        measured.apps[kind] = []
        for pair, order in orders(pairs):
            arms: dict[str, Arm] = {}
            for name in order:
                arms[name] = arm = app_arm(ctx, kind, name, seconds, light_seconds, connections)
                shipped = f", {arm.stored} events in ES" if name == "hq" else ""
                if arm.light_idle:
                    shipped += f", light p99 {arm.light_idle.p99:.3f} ms with ES yielding"
                if name == "stub":
                    shipped = f", {arm.events_per_batch:.0f} events per batch"
                ctx.say(
                    f"  pair {pair + 1} {name:5}: {arm.wrk.rate:7.0f} requests/s (p99 "
                    f"{arm.wrk.p99:.2f} ms), light p50 {arm.light.p50:.3f} / p99 "
                    f"{arm.light.p99:.3f} ms, app "
                    f"{arm.cpu_us_per_request('app'):.1f} CPU-us/request{shipped}, "
                    f"settled in {arm.settled:.1f} s"
                )
            measured.apps[kind].append(arms)
    ctx.say(f"(g4) log records: {pairs} rounds of {records} records")
    for pair, order in orders(pairs):
        logs: dict[str, LogArm] = {}
        for name in order:
            logs[name] = log = log_arm(ctx, name, records)
            ctx.say(f"  pair {pair + 1} {name:5}: {log.rate:8.0f} records/s")
        measured.logs.append(logs)
    return measured
