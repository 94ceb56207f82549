"""Figure (f): HQ under a fleet of agents that each send small batches (issue 13).

Three closed-loop arms, alternated within each pair, all driven by wrk with `fleet.lua`:

- `hq`: `connections` keep-alive connections (500 or more, one per agent) each sending 6-event
  OS-monitor batches to HQ's PUT /events, spaces in turn;
- `direct6`: the same batches as `_bulk` requests straight to Elasticsearch, same connections;
- `direct1000`: the same documents in 1000-event `_bulk` requests on a few connections, what
  Elasticsearch itself sustains best.

Each arm runs warmup + window + 1 s; events/s and CPU per event come from the window only:
events from wrk's own tally of acknowledged requests (per 100 ms), CPU from /proc sampled every
100 ms (Elasticsearch, HQ and its children) and wrk's rusage. Afterwards `_count` after a
refresh must cover what was acknowledged (and exceed it by at most the requests in flight when
wrk stopped). Then a fixed-rate arm at half of HQ's fleet maximum (f4, the open-loop generator
of `openloop.py`, from each request's due time), with the direct 6-event `_bulk` at the same
rate as a reference, and HQ's RSS growth for idle keep-alive connections (f5).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import fleetfloor, fleetidle, fleetrate, wrk
from .fleetrun import FleetRun, figure, port
from .load import LoadError
from .procs import SyscallCount, connections_to, cpu_seconds, run_queue_seconds, tree_cpu_seconds

ARMS = ("hq", "direct6", "direct1000")


def raise_fd_limit(needed: int) -> int:
    """Raise this process's open-file limit (its children inherit it) to `needed` if the
    hard limit allows; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@dataclass
class Arm:
    """One closed-loop arm over its steady window."""

    arm: str
    run: wrk.WrkRun = field(repr=False)
    events: int  # acknowledged in the window
    seconds: float
    cpu: dict[str, float]  # CPU-s in the window: es, hq
    stored: int  # _count after the arm, refreshed
    es_requests: dict[str, float]  # node counters over the whole run
    hq_es_connections: int  # most connections HQ held to Elasticsearch
    hq_waited: float  # seconds HQ's threads waited for a CPU over the whole run

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def us(self, name: str) -> float:
        return 1e6 * self.cpu[name] / max(self.events, 1)

    @property
    def generator_us(self) -> float:
        return 1e6 * self.run.cpu_s / max(self.run.events, 1)


class FleetBench(FleetRun):
    """Figure (f): the closed-loop rounds (f1-f3) here, then f4 (`fleetrate`) and f5
    (`fleetidle`)."""

    async def run(self) -> None:
        needed = self.plan.idle_connections + 2 * self.plan.connections + 256
        limit = raise_fd_limit(needed)
        if limit < needed:
            self.say(f"  open-file limit {limit} < {needed}: fewer connections will open")
        try:
            try:
                wrk.ensure_wrk()
            except wrk.WrkMissing as missing:
                for key in ("f1", "f2", "f3", "f4"):
                    self.figures.append(figure(key, [], str(missing)))
            else:
                self.hq = await asyncio.to_thread(self.start_hq)
                try:
                    await self.closed_loop()
                    await fleetfloor.floor(self)
                    await fleetrate.fixed_rate(self)
                    await fleetrate.curve(self)
                finally:
                    await asyncio.to_thread(self.hq.stop)
            await fleetidle.idle(self)
        finally:
            await self.es.fresh_indices()
            await self.es.close()
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- f1, f2, f3 -----------------------------------------------------------------------

    def config(self, arm: str) -> Path:
        per_request = 1000 if arm == "direct1000" else 6
        mode = "hq" if arm == "hq" else "bulk"
        path = self.workdir / f"{arm}.lua"
        return self.fleet.lua_config(path, mode, per_request, random.getrandbits(32))

    async def arm(self, arm: str, seconds: int, warmup: int) -> Arm:
        assert self.hq is not None
        hq_pid = self.hq.pid
        es_pid = self.es_pid()
        url = self.hq.url if arm == "hq" else self.es_url
        connections = self.plan.bulk_connections if arm == "direct1000" else self.plan.connections
        seeded = await self.fresh()
        before = await self.es.node_stats()
        samples: list[tuple[float, float, float]] = []
        pool = [0]

        async def sample() -> None:
            ticks = 0
            while True:
                samples.append((time.monotonic(), cpu_seconds(es_pid), tree_cpu_seconds(hq_pid)))
                if arm == "hq" and ticks % 10 == 5:
                    # A count missed is no matter; the CPU samples must go on.
                    with contextlib.suppress(OSError):
                        pool[0] = max(pool[0], connections_to(hq_pid, port(self.es_url)))
                ticks += 1
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        waited = run_queue_seconds(hq_pid)
        syscalls = SyscallCount(es_pid, self.workdir / f"{arm}.perf")
        try:
            run = await asyncio.to_thread(
                wrk.run, url, self.config(arm), connections, warmup + seconds + 1
            )
        finally:
            sampler.cancel()
            counted = await asyncio.to_thread(syscalls.stop)
        waited = run_queue_seconds(hq_pid) - waited
        after = await self.es.node_stats()
        after.update(counted)
        stored = await self.settled_count() - seeded
        if run.socket_errors or run.refused:
            raise LoadError(
                f"{arm}: {run.refused} requests refused, socket errors {run.errors}: "
                f"{run.failures[:2]}"
            )
        in_flight = connections * run.per_request
        if not run.events <= stored <= run.events + in_flight:
            raise LoadError(
                f"{arm}: {run.events} events acknowledged, but _count is {stored} "
                f"(at most {in_flight} more could have been in flight)"
            )
        start = round(run.started + warmup + 0.05, 1)
        end = start + seconds
        cpu = {
            "es": _at(samples, end, 1) - _at(samples, start, 1),
            "hq": _at(samples, end, 2) - _at(samples, start, 2),
        }
        events = run.events_between(start, end)
        if events <= 0:
            raise LoadError(f"{arm}: nothing was acknowledged in the steady window")
        return Arm(
            arm,
            run,
            events,
            seconds,
            cpu,
            stored,
            {k: after[k] - before.get(k, 0) for k in after},  # perf counts start at 0
            pool[0],
            waited,
        )

    async def closed_loop(self) -> None:
        plan = self.plan
        self.say(
            f"(f) fleet: {plan.connections} agents, 6-event batches, {len(self.fleet.spaces)} "
            f"spaces; {plan.pairs} rounds of {', '.join(ARMS)}, {plan.seconds} s windows"
        )
        # Every arm once, not counted, as long as a counted one: a node just started indexes
        # the first seconds of each kind of load at a fraction of its later rate (a cold first
        # direct6 arm came out at a third of the others on 1 Dec, flattering f2 and skewing
        # f1's first round). Arms of 5 s were too short when (f) runs alone, right after the
        # node started: on 2 Dec its first round still found Elasticsearch at twice its later
        # CPU per event, and HQ, kept less busy, at 13.4 µs per event against 11.5-12.1.
        for arm in ("direct1000", "direct6", "hq"):
            try:
                await self.arm(arm, plan.seconds, plan.warmup)
            except LoadError as error:
                self.say(f"  warm-up {arm}: {error}")
        arms: dict[str, list[Arm]] = {a: [] for a in ARMS}
        dropped: list[str] = []
        for pair in range(plan.pairs):
            order = ARMS if pair % 2 == 0 else tuple(reversed(ARMS))
            results: dict[str, Arm] = {}
            for name in order:
                try:
                    results[name] = await self.arm(name, plan.seconds, plan.warmup)
                except (LoadError, RuntimeError, OSError) as error:
                    dropped.append(f"round {pair + 1}: {error}")
                    self.say(f"  round {pair + 1} {name}: not measured: {error}")
                    break
                a = results[name]
                self.say(
                    f"  round {pair + 1} {name:10}: {a.rate:7.0f} events/s, ES "
                    f"{a.us('es'):5.1f} us/event, HQ {a.us('hq'):5.1f} us/event, wrk "
                    f"{a.generator_us:4.1f} us/event"
                )
            if len(results) == len(ARMS):
                for name, a in results.items():
                    arms[name].append(a)
        hq, d6, d1000 = arms["hq"], arms["direct6"], arms["direct1000"]
        why = "; ".join(dropped) or "no complete round"
        self.figures.append(
            figure(
                "f1",
                [h.us("es") / d.us("es") for h, d in zip(hq, d1000, strict=True)],
                why,
            )
        )
        self.figures.append(
            figure("f2", [h.rate / d.rate for h, d in zip(hq, d6, strict=True)], why)
        )
        self.figures.append(figure("f3", [h.us("hq") for h in hq], why))
        self.data["fleet"] = {
            name: [
                {
                    "rate": a.rate,
                    "es_us": a.us("es"),
                    "hq_us": a.us("hq"),
                    "wrk_us": a.generator_us,
                    "hq_es_connections": a.hq_es_connections,
                    "es_requests": a.es_requests,
                }
                for a in results_
            ]
            for name, results_ in arms.items()
        }
        self.data["fleet_dropped"] = dropped
        self._closed_loop_appendix(arms, dropped)

    def _closed_loop_appendix(self, arms: dict[str, list[Arm]], dropped: list[str]) -> None:
        rows = []
        for name in ARMS:
            for i, a in enumerate(arms[name]):
                rows.append(
                    f"| {i + 1} | {name} | {a.rate:.0f} | {a.us('es'):.1f} | {a.us('hq'):.1f} | "
                    f"{a.generator_us:.1f} | {a.run.events} | {a.stored - a.run.events} | "
                    f"{a.run.latency_ms['p50']:.0f} | {a.run.latency_ms['p99']:.0f} | "
                    f"{a.hq_es_connections if name == 'hq' else '-'} | "
                    f"{1000 * a.hq_waited / max(a.run.requests, 1) if name == 'hq' else 0:.1f} |"
                )
        sample = next((a for a in arms["hq"]), None)
        text = (
            f"### (f) Fleet, closed loop: {self.plan.connections} connections of 6-event "
            f"batches (HQ and direct), {self.plan.bulk_connections} of 1000-event `_bulk`\n\n"
            f"Each arm: wrk for {self.plan.warmup} s warm-up + {self.plan.seconds} s window + "
            "1 s; events/s and CPU per event over the window. Events are what wrk saw "
            "acknowledged (202; 200 with `errors:false`), about "
            f"{sample.run.event_bytes if sample else 0:.0f} bytes each; `_count` after the arm "
            "also holds the requests that were in flight when wrk stopped (column 'in flight'). "
            "Latencies are wrk's own, closed loop (from send), for information.\n\n"
            "'HQ run-queue wait': how long HQ's threads waited for a CPU (schedstat), per "
            "request.\n\n"
            "| round | arm | events/s | ES CPU-us/event | HQ CPU-us/event | wrk CPU-us/event | "
            "acknowledged | in flight | p50 ms | p99 ms | HQ->ES connections | "
            "HQ run-queue wait ms/request |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
        )
        if dropped:
            text += "\n\nRounds not measured: " + "; ".join(dropped)
        self.appendix.append(text)
        # What Elasticsearch was asked to do, per 1000 documents it indexed (median of rounds).
        keys: list[str] = []
        for name in ARMS:
            for a in arms[name]:
                keys += [k for k, v in a.es_requests.items() if v and k not in keys]
        if not keys:
            return
        lines = []
        for key in keys:
            cells = []
            for name in ARMS:
                per = [
                    1000 * a.es_requests.get(key, 0) / max(a.es_requests["docs indexed"], 1)
                    for a in arms[name]
                ]
                cells.append(f"{statistics.median(per):.2f}" if per else "-")
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        self.appendix.append(
            "### (f) What Elasticsearch was asked to do, per 1000 documents indexed\n\n"
            "From `_nodes/_local/stats` before and after each arm (median of rounds): "
            "requests per HTTP route, shard-level bulk requests, refreshes, flushes, merges.\n\n"
            "| counter | "
            + " | ".join(ARMS)
            + " |\n|---|"
            + "---|" * len(ARMS)
            + "\n"
            + "\n".join(lines)
        )


def _at(samples: list[tuple[float, float, float]], at: float, column: int) -> float:
    """A sampled CPU counter at time `at`, interpolated between the samples around it."""
    before = [s for s in samples if s[0] <= at]
    after = [s for s in samples if s[0] >= at]
    if not before or not after:
        first, last = (samples[0][0], samples[-1][0]) if samples else (0.0, 0.0)
        raise LoadError(f"the CPU samples ({first:.1f}-{last:.1f} s) do not cover {at:.1f} s")
    a, b = before[-1], after[0]
    if b[0] == a[0]:
        return a[column]
    return a[column] + (b[column] - a[column]) * (at - a[0]) / (b[0] - a[0])
