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
import os
import random
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import openloop, wrk
from .fleetevents import Batch, Fleet
from .load import Elasticsearch, LoadError
from .procs import (
    HQProcess,
    SyscallCount,
    connections_to,
    cpu_seconds,
    descendants,
    memory_kib,
    open_fds,
    run_queue_seconds,
    tree_cpu_seconds,
)
from .report import Figure

HERE = Path(__file__).resolve().parent
ARMS = ("hq", "direct6", "direct1000")
FIGURES = {
    "f1": ("ES CPU-us/event, HQ fleet / direct 1000-event `_bulk`", "<= 1.3", "<= 1.1", ""),
    "f2": ("HQ fleet events/s / direct 6-event `_bulk` events/s", ">= 2.5", ">= 4", ""),
    "f3": ("HQ CPU per event, fleet", "<= 12", "<= 6", "us"),
    "f4": ("p99 at a fixed rate of half of HQ's fleet maximum", "<= 200", "<= 80", "ms"),
    "f5": ("HQ RSS growth for {n} idle keep-alive connections", "<= 40", "<= 20", "MiB"),
}


def figure(key: str, values: list[float], why: str = "", **names: object) -> Figure:
    name, must, ambitious, unit = FIGURES[key]
    name = name.format(**names)
    if not values:
        return Figure.not_measured(key, name, why, must, ambitious=ambitious, unit=unit)
    return Figure(key, name, values, must, ambitious, unit=unit)


def raise_fd_limit(needed: int) -> int:
    """Raise this process's open-file limit (its children inherit it) to `needed` if the
    hard limit allows; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@dataclass(frozen=True)
class FleetPlan:
    connections: int
    pairs: int
    seconds: int  # the measured window of each closed-loop arm
    warmup: int
    bulk_connections: int
    latency_seconds: float
    latency_pairs: int
    idle_connections: int
    idle_repeats: int
    curve: str = ""  # events/s, comma-separated: the optional cost curve
    curve_seconds: float = 15.0


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


class FleetBench:
    def __init__(
        self,
        plan: FleetPlan,
        es_url: str,
        es_pid: Callable[[], int | None],
        prefix: str,
        say: Callable[[str], None],
    ) -> None:
        self.plan = plan
        self.es_url = es_url
        self.es_pid = es_pid
        self.fleet = Fleet(prefix)
        self.prefix = prefix
        self.say = say
        self.es = Elasticsearch(es_url, prefix, self.fleet.index_pattern())
        self.figures: list[Figure] = []
        self.appendix: list[str] = []
        self.data: dict[str, Any] = {}
        self.workdir = Path(tempfile.mkdtemp(prefix="lsbench-fleet-"))
        self.hq: HQProcess | None = None
        self.generators = 0  # open-loop generators so far: each gets ids of its own
        self.last_p99 = 0.0

    def start_hq(self) -> HQProcess:
        log = HERE / "hq-fleet.log"
        return HQProcess(
            self.es_url, self.prefix, log, LOGSPACE_SPACE_TOKENS=self.fleet.tokens_setting()
        )

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
                    await self.fixed_rate()
                    await self.curve()
                finally:
                    await asyncio.to_thread(self.hq.stop)
            await self.idle()
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
                        pool[0] = max(pool[0], connections_to(hq_pid, _port(self.es_url)))
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
        stored = await self._settled_count() - seeded
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

    async def fresh(self) -> int:
        """New indices for an arm: delete the fleet's, then create them with every property
        mapped, by one batch per space straight to `_bulk`, so that the arm measures indexing
        and not index creation and mapping updates (which took seconds with 512 requests
        waiting). Returns `_count` after that."""
        await self.es.fresh_indices()
        body = b"".join(
            b.bulk_body(self.prefix) for b in self.fleet.batches(len(self.fleet.spaces), 0x300)
        )
        answer = await self.es.call(
            "POST",
            "/_bulk",
            params={"filter_path": "errors"},
            data=body,
            headers={"content-type": "application/x-ndjson"},
        )
        if answer != {"errors": False}:
            raise LoadError(f"seeding the fleet's indices failed: {answer}")
        return await self.es.refreshed_count()

    async def _settled_count(self) -> int:
        """`_count` once requests still in flight when the generator stopped have landed."""
        last = -1
        for _ in range(20):
            count = await self.es.refreshed_count()
            if count == last:
                return count
            last = count
            await asyncio.sleep(0.5)
        return last

    async def closed_loop(self) -> None:
        plan = self.plan
        self.say(
            f"(f) fleet: {plan.connections} agents, 6-event batches, {len(self.fleet.spaces)} "
            f"spaces; {plan.pairs} rounds of {', '.join(ARMS)}, {plan.seconds} s windows"
        )
        for arm in ("direct1000", "hq"):
            try:
                await self.arm(arm, 3, 2)  # warms Elasticsearch and HQ up; not counted
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

    # -- f4 ---------------------------------------------------------------------------------

    async def fixed_rate(self) -> None:
        assert self.hq is not None
        hq_rates = [a["rate"] for a in self.data.get("fleet", {}).get("hq", [])]
        if not hq_rates:
            self.figures.append(figure("f4", [], "no HQ fleet maximum was measured"))
            return
        rate = 0.5 * statistics.median(hq_rates)
        per_second = rate / 6
        seconds = self.plan.latency_seconds + 2.0
        count = int(per_second * seconds)
        self.say(
            f"(f4) {rate:.0f} events/s ({per_second:.0f} requests/s) at a fixed rate, "
            f"{self.plan.connections} connections, {self.plan.latency_seconds:.0f} s"
        )
        rows, p99s, why = [], [], ""
        for pair in range(self.plan.latency_pairs):
            order = ("hq", "direct6") if pair % 2 == 0 else ("direct6", "hq")
            for arm in order:
                try:
                    rows.append(await self._fixed_arm(arm, per_second, count, str(pair + 1)))
                except (LoadError, OSError) as error:
                    why = f"{arm}: {error}"
                    self.say(f"  {arm}: not measured: {error}")
                    continue
                if arm == "hq":
                    p99s.append(self.last_p99)
        self.figures.append(figure("f4", p99s, why))
        self.appendix.append(
            f"### (f4) Fixed rate: {rate:.0f} events/s ({per_second:.0f} requests of 6 events/s) "
            f"over {self.plan.connections} connections, {self.plan.latency_seconds:.0f} s timed "
            "after 2 s\n\n"
            "Open loop (`bench/openloop.py`): request k is due at t0 + k / rate and goes out on "
            "a free connection, or waits for one; latency runs from the due time to the answer "
            "(HQ's 202 after Elasticsearch acknowledged, or `_bulk`'s 200). The direct arm sends "
            "the same kind of batches as `_bulk` at the same rate: the latency Elasticsearch "
            "itself gives, and its CPU per event at this load.\n\n" + FIXED_HEADER + "\n".join(rows)
        )

    async def _fixed_arm(self, arm: str, per_second: float, count: int, label: str) -> str:
        """One open-loop arm at `per_second` requests of 6 events; its appendix row."""
        assert self.hq is not None
        target = self.hq.url if arm == "hq" else self.es_url
        host, port = target.removeprefix("http://").split(":")
        self.generators += 1
        batches = self.fleet.batches(count, generator=0x100 + self.generators)
        if arm == "hq":
            requests = [_put_events(host, port, b) for b in batches]
        else:
            requests = [
                openloop.request_bytes(
                    "POST",
                    f"{host}:{port}",
                    "/_bulk?filter_path=errors",
                    {"Content-Type": "application/x-ndjson"},
                    b.bulk_body(self.prefix),
                )
                for b in batches
            ]
        seeded = await self.fresh()
        client = openloop.Client(host, int(port))
        await client.open(self.plan.connections)
        # HQ with its children; not the loader's tree, which holds HQ.
        cpu_of = {"es": cpu_seconds, "hq": tree_cpu_seconds, "loader": cpu_seconds}
        pids = {"es": self.es_pid(), "hq": self.hq.pid, "loader": os.getpid()}
        before = {n: cpu_of[n](p) for n, p in pids.items()}
        waited = run_queue_seconds(self.hq.pid)
        syscalls = SyscallCount(pids["es"], self.workdir / f"fixed-{arm}.perf")
        pool = 0
        try:
            offered = asyncio.create_task(
                openloop.offer(
                    client, requests, per_second, 202 if arm == "hq" else b'{"errors":false'
                )
            )
            while not offered.done():
                if arm == "hq":
                    pool = max(pool, connections_to(self.hq.pid, _port(self.es_url)))
                await asyncio.wait({offered}, timeout=1.0)
            result = offered.result()
        finally:
            counted = await asyncio.to_thread(syscalls.stop)
            await client.close()
        cpu = {n: cpu_of[n](p) - before[n] for n, p in pids.items()}
        waited = run_queue_seconds(self.hq.pid) - waited
        stored = await self.es.refreshed_count() - seeded
        if result.refused or stored != 6 * result.acknowledged:
            raise LoadError(
                f"{result.refused} refused ({result.failures[:2]}), _count {stored} after "
                f"{result.acknowledged} acknowledged requests of 6 events"
            )
        events = 6 * result.acknowledged
        self.say(
            f"  {label} {arm:7}: p50 {result.ms(50):.1f} ms, p99 {result.ms(99):.1f} ms, "
            f"max {result.max_ms:.0f} ms, ES {1e6 * cpu['es'] / events:.1f} us/event"
        )
        per_request = {k: v / max(result.requests, 1) for k, v in counted.items()}
        self.last_p99 = result.ms(99)
        self.data.setdefault("fleet_fixed", []).append(
            {
                "label": label,
                "arm": arm,
                "rate": 6 * per_second,
                "p50": result.ms(50),
                "p99": result.ms(99),
                "max": result.max_ms,
                "es_us": 1e6 * cpu["es"] / events,
                "hq_us": 1e6 * cpu["hq"] / events if arm == "hq" else None,
                "reconnects": result.reconnects + result.races,
                "hq_waited_ms": 1000 * waited / max(result.requests, 1),
            }
        )
        return (
            f"| {label} | {arm} | {result.ms(50):.1f} | {result.ms(90):.1f} | "
            f"{result.ms(99):.1f} | {result.ms(99.9):.1f} | {result.max_ms:.1f} | "
            f"{result.requests} | {result.late_starts} | {result.reconnects + result.races} | "
            f"{1e6 * cpu['es'] / events:.1f} | "
            f"{1e6 * cpu['hq'] / events if arm == 'hq' else 0:.1f} | "
            f"{1e6 * cpu['loader'] / max(result.requests, 1):.0f} | "
            f"{per_request.get('fdatasync calls', float('nan')):.2f} | "
            f"{per_request.get('context switches', float('nan')):.1f} | "
            f"{pool if arm == 'hq' else '-'} | "
            f"{1000 * waited / max(result.requests, 1) if arm == 'hq' else 0:.1f} |"
        )

    async def curve(self) -> None:
        """ES CPU per event at each offered rate of BENCH_FLEET_CURVE, through HQ and direct:
        whether Elasticsearch's cost per event depends on who sends or on how much."""
        rates = [float(r) for r in self.plan.curve.split(",") if r.strip()]
        if not rates:
            return
        self.say(f"(f) cost curve at {rates} events/s, {self.plan.curve_seconds:.0f} s each")
        rows = []
        for rate in rates:
            for arm in ("hq", "direct6"):
                count = int(rate / 6 * (self.plan.curve_seconds + 2))
                try:
                    rows.append(await self._fixed_arm(arm, rate / 6, count, f"{rate:.0f}/s"))
                except (LoadError, OSError) as error:
                    rows.append(f"| {rate:.0f}/s | {arm} | not measured: {error} |")
        self.appendix.append(
            "### (f) Cost curve: the fleet's batches at fixed rates, through HQ and direct\n\n"
            + FIXED_HEADER
            + "\n".join(rows)
        )

    # -- f5 ---------------------------------------------------------------------------------

    async def idle(self) -> None:
        n = self.plan.idle_connections
        self.say(f"(f5) RSS of a fresh HQ for {n} idle keep-alive connections")
        growth, rows, why = [], [], ""
        for repeat in range(self.plan.idle_repeats):
            try:
                row, mib = await self._idle_once(n)
            except (LoadError, OSError, RuntimeError) as error:
                why = str(error)
                self.say(f"  not measured: {error}")
                continue
            growth.append(mib)
            rows.append(f"| {repeat + 1} | {row}")
        self.figures.append(figure("f5", growth, why, n=n))
        self.appendix.append(
            f"### (f5) {n} idle keep-alive connections\n\n"
            "A fresh HQ, warmed up by 200 requests on 8 connections (closed again), then "
            f"{n} connections each sending one `GET /health/live` and staying open. Growth = "
            "RSS (HQ and its children) 1 s after the last answer - RSS before. HQ runs "
            "uvicorn, which closes a keep-alive connection idle for 5 s (`timeout_keep_alive`): "
            "the last column counts the connections still open 6 s later.\n\n"
            "| repeat | RSS before MiB | RSS after MiB | growth MiB | KiB per connection | "
            "HQ open fds | open after 6 s |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
        )

    async def _idle_once(self, n: int) -> tuple[str, float]:
        hq = await asyncio.to_thread(self.start_hq)
        try:
            host, port = hq.url.removeprefix("http://").split(":")
            warm = openloop.Client(host, int(port))
            await warm.open(8)
            batches = list(self.fleet.batches(200, generator=0x200))
            for start in range(0, 200, 8):
                answers = await asyncio.gather(
                    *(
                        c.exchange(_put_events(host, port, b))
                        for c, b in zip(warm.connections, batches[start : start + 8], strict=True)
                    )
                )
                if any(a.status != 202 for a in answers):
                    raise LoadError(f"warm-up answered {[a.status for a in answers]}")
            await warm.close()
            await asyncio.sleep(1.0)
            before = _rss_kib(hq.pid)
            client = openloop.Client(host, int(port))
            try:
                await client.open(n)
                live = openloop.request_bytes("GET", f"{host}:{port}", "/health/live", {})
                answers = await client.each(live)
                if any(a.status != 200 for a in answers):
                    bad = sum(a.status != 200 for a in answers)
                    raise LoadError(f"{bad} of {n} connections got no 200 from /health/live")
                await asyncio.sleep(1.0)
                after = _rss_kib(hq.pid)
                fds = open_fds(hq.pid)
                await asyncio.sleep(6.0)
                still = client.still_open()
            finally:
                await client.close()
        finally:
            await asyncio.to_thread(hq.stop)
        mib = (after - before) / 1024
        self.say(
            f"  RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB, {still} of {n} open after 6 s"
        )
        row = (
            f"{before / 1024:.1f} | {after / 1024:.1f} | {mib:.1f} | {(after - before) / n:.1f} | "
            f"{fds} | {still} |"
        )
        return row, mib


FIXED_HEADER = (
    "'late starts': requests sent more than 5 ms after their due time, because no connection "
    "was free or the generator itself was late (still timed from their due time); fdatasync "
    "and context switches are Elasticsearch's, per request (`perf stat`); 'HQ->ES "
    "connections': the most HQ held open to Elasticsearch; 'reconnects': requests that found "
    "their connection closed by the server after its keep-alive timeout and went out on a new "
    "one; 'HQ run-queue wait': how long HQ's threads waited for a CPU (schedstat), per "
    "request.\n\n"
    "| round | arm | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | requests | late starts | "
    "reconnects | ES CPU-us/event | HQ CPU-us/event | generator CPU-us/request | "
    "ES fdatasync/request | ES context switches/request | HQ->ES connections | "
    "HQ run-queue wait ms/request |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def _rss_kib(pid: int) -> int:
    return sum(memory_kib(p).get("VmRSS", 0) for p in [pid, *descendants(pid)])


def _port(url: str) -> int:
    return int(url.rstrip("/").rpartition(":")[2])


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


def _put_events(host: str, port: str, batch: Batch) -> bytes:
    """The raw `PUT /events` request of an agent's batch, with its space's token."""
    return openloop.request_bytes(
        "PUT",
        f"{host}:{port}",
        "/events",
        {"Content-Type": "application/json", "logspace.space-token": Fleet.token(batch.space)},
        batch.hq_body(),
    )
