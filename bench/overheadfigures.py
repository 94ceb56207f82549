"""Figure (g) from its arms (bench/overhead.py): the ratios and the appendix of absolutes."""

from __future__ import annotations

import os

from . import report
from .overheadrounds import Measured
from .report import Figure


def figures(measured: Measured) -> list[Figure]:
    """The figures of (g): ratios per round against the plain arm of the same round."""
    found = []
    servers = {"asgi": "ASGI app (uvicorn)", "wsgi": "WSGI app (gunicorn)"}
    for kind, key in (("asgi", "g1"), ("wsgi", "g2")):
        rounds = measured.apps[kind]
        plain = [r["plain"].wrk.rate for r in rounds]
        for arm, suffix, what, gated in (
            ("hq", "", "requests/s with the agent / without", True),
            ("stub", "-stub", "the same, the agent shipping to a stub HQ", False),
        ):
            ratios, rejected = report.keep_undisturbed(
                plain, [r[arm].wrk.rate / r["plain"].wrk.rate for r in rounds]
            )
            found.append(
                Figure(
                    key + suffix,
                    f"{servers[kind]}: {what}",
                    ratios,
                    ">= 0.75",
                    ">= 0.9",
                    rejected=rejected,
                    gated=gated,
                )
            )
    found.extend(_ceilings(measured))
    for kind, key, gated in (("asgi", "g3", True), ("wsgi", "g3-wsgi", False)):
        rounds = measured.apps[kind]
        for arm, suffix, what, gate in (
            ("hq", "", f"p99 latency added by the agent, {servers[kind]}, light paced load", gated),
            (
                "stub",
                "-stub",
                f"the same, the agent shipping to a stub HQ ({servers[kind]})",
                False,
            ),
        ):
            found.append(
                Figure(
                    key + suffix,
                    what,
                    [r[arm].light.p99 - r["plain"].light.p99 for r in rounds],
                    "<= 1",
                    "<= 0.2",
                    unit="ms",
                    gated=gate,
                )
            )
        yielded = [
            hq_idle.p99 - r["plain"].light.p99
            for r in rounds
            if (hq_idle := r["hq"].light_idle) is not None
        ]
        if yielded:
            found.append(
                Figure(
                    f"{key}-es-idle",
                    f"the same, shipping to HQ, Elasticsearch's threads under SCHED_IDLE "
                    f"({servers[kind]})",
                    yielded,
                    "<= 1",
                    "<= 0.2",
                    unit="ms",
                    gated=False,
                )
            )
        found.append(
            Figure(
                f"{key}-p50",
                f"p50 latency added by the agent, {servers[kind]}, light paced load",
                [r["hq"].light.p50 - r["plain"].light.p50 for r in rounds],
                "",
                unit="ms",
                gated=False,
            )
        )
    found.extend(
        Figure(
            f"g-cpu-{kind}",
            f"app CPU per request added by the agent, {kind.upper()}, stub HQ (shipping included)",
            [
                r["stub"].cpu_us_per_request("app") - r["plain"].cpu_us_per_request("app")
                for r in measured.apps[kind]
            ],
            "",
            unit="us",
            gated=False,
        )
        for kind in ("asgi", "wsgi")
    )
    plain = [r["plain"].rate for r in measured.logs]
    for arm, suffix, what, gated in (
        ("hq", "", "", True),
        ("stub", "-stub", ", the sender shipping to a stub HQ", False),
    ):
        ratios, rejected = report.keep_undisturbed(
            plain, [r[arm].rate / r["plain"].rate for r in measured.logs]
        )
        found.append(
            Figure(
                "g4" + suffix,
                f"log records/s through `LogHandler` / through a `FileHandler`{what}",
                ratios,
                ">= 0.5",
                ">= 0.8",
                rejected=rejected,
                gated=gated,
            )
        )
    return found


def _ceilings(measured: Measured) -> list[Figure]:
    """What g1 and g2 could be with an agent that cost nothing, on this box: the box's cores
    shared by the app (its plain cost per request), wrk, HQ and Elasticsearch (theirs in the
    hq arm) and nothing else, perfectly. An upper bound from the round's own CPU figures, to
    tell the agent's share of a shortfall from the indexing's on shared cores."""
    cores = len(os.sched_getaffinity(0))
    found = []
    for kind, key in (("asgi", "g1"), ("wsgi", "g2")):
        bounds = []
        for r in measured.apps[kind]:
            plain, hq = r["plain"], r["hq"]
            box_us = plain.cpu_us_per_request("app") + sum(
                hq.cpu_us_per_request(name) for name in ("wrk", "hq", "es")
            )
            bounds.append(min(1.0, cores * 1e6 / box_us / plain.wrk.rate))
        found.append(
            Figure(
                f"{key}-ceiling",
                f"the most {key} could be with an agent costing nothing: {cores} cores shared "
                "by the app, wrk, HQ and Elasticsearch (a model from the round's CPU figures)",
                bounds,
                "",
                gated=False,
            )
        )
    return found


def appendix(
    measured: Measured,
    seconds: float,
    light_seconds: float,
    connections: int,
    records: int,
) -> list[str]:
    """The absolute figures of every arm."""
    rows = []
    for kind, rounds in measured.apps.items():
        for i, r in enumerate(rounds):
            plain, hq, stub = r["plain"], r["hq"], r["stub"]
            yielding = f"{hq.light_idle.p99:.3f}" if hq.light_idle else "-"
            rows.append(
                f"| {kind.upper()} | {i + 1} | {plain.wrk.rate:.0f} | {hq.wrk.rate:.0f} | "
                f"{stub.wrk.rate:.0f} | {plain.wrk.p99:.2f} / {hq.wrk.p99:.2f} / "
                f"{stub.wrk.p99:.2f} | {plain.light.p50:.3f}, {plain.light.p99:.3f} / "
                f"{hq.light.p50:.3f}, {hq.light.p99:.3f} / {stub.light.p50:.3f}, "
                f"{stub.light.p99:.3f} | {yielding} | {hq.light_es:.2f} | "
                f"{plain.cpu_us_per_request('app'):.1f} / "
                f"{hq.cpu_us_per_request('app'):.1f} / "
                f"{stub.cpu_us_per_request('app'):.1f} | "
                f"{hq.cpu_us_per_request('hq'):.1f} | {hq.cpu_us_per_request('es'):.1f} | "
                f"{plain.cpu_us_per_request('wrk'):.1f} / {hq.cpu_us_per_request('wrk'):.1f} | "
                f"{hq.stored} of {hq.stats['enqueued']} | {stub.events_per_batch:.0f} |"
            )
    logs = [
        f"| {i + 1} | {r['plain'].rate:.0f} | {r['hq'].rate:.0f} | {r['stub'].rate:.0f} | "
        f"{r['hq'].stored} of {r['hq'].stats['enqueued']} |"
        for i, r in enumerate(measured.logs)
    ]
    return [
        f"### (g) Apps under `wrk`: {light_seconds:g} s at a light paced load, "
        f"then {seconds:g} s of `wrk -t2 -c{connections}`\n\n"
        "Three arms per round, in the order plain, hq, stub and back (ABC CBA): the app "
        "alone; with the agent shipping to HQ, which stores into Elasticsearch on the same "
        "cores; with the agent shipping to a stub that answers 202 and stores nothing. "
        "Each arm is a fresh server process, warmed up by 2 s of wrk. Saturated: requests/s "
        "and p99 at 16 connections; light: p50 and p99 (ms) at two connections each "
        "pausing 1 ms between requests (`bench/paced.lua`); in the hq arm the light load "
        "again with Elasticsearch's threads under SCHED_IDLE ('p99 ES idle': they run only "
        "on cores nothing else wants; HQ keeps its priority), and the cores "
        "Elasticsearch used during the first light load ('ES cores, light'). App CPU is "
        "utime+stime over the saturated run per request answered; HQ and ES CPU in the hq "
        "arm is the indexing of the app's events; wrk's own is given for the plain and "
        'hq arms. "In ES" is what Elasticsearch holds '
        "of the hq arm's events after the server's clean stop, against the sender's "
        '`enqueued` (warm-up included). "Per batch" is the events the stub arm\'s agent '
        "shipped per request to the stub, over the whole arm.\n\n"
        "| app | round | req/s plain | req/s hq | req/s stub | sat. p99 plain / hq / stub | "
        "light p50, p99 plain / hq / stub | light p99 hq, ES idle | ES cores, light | "
        "app CPU-us/req plain / hq / stub | "
        "HQ CPU-us/req | ES CPU-us/req | wrk CPU-us/req plain / hq | in ES | per batch |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows),
        f"### (g4) Log records, {records} per arm (after {records // 10} "
        "not counted), a process per arm\n\n"
        "| round | FileHandler records/s | LogHandler to HQ | LogHandler to the stub | "
        "in ES |\n|---|---|---|---|---|\n" + "\n".join(logs),
    ]
