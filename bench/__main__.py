"""`make bench`: every figure of issues 7, 13 and 18, as ratios against references measured in
the same run. `python -m bench fg` (any letters of "abcdefg") runs only those figures.

Knobs (environment): BENCH_QUICK=1 for a short development run; BENCH_PAIRS, BENCH_ARM_SECONDS,
BENCH_LATENCY_SECONDS, BENCH_LATENCY_BULK, BENCH_SWEEP ("500,1000:2,4" = bulk sizes x
concurrencies), BENCH_FIGURES (a subset of "abcdefg"; the command line wins), BENCH_MEMORY_K,
BENCH_MEMORY_REPEATS; for the fleet (f): BENCH_FLEET_CONNECTIONS, BENCH_FLEET_PAIRS,
BENCH_FLEET_SECONDS, BENCH_FLEET_WARMUP, BENCH_FLEET_BULK_CONNECTIONS,
BENCH_FLEET_LATENCY_SECONDS, BENCH_FLEET_LATENCY_PAIRS, BENCH_FLEET_IDLE,
BENCH_FLEET_IDLE_REPEATS; BENCH_FLEET_CURVE ("1000,2000,4000": also measure those rates through
HQ and direct, for the appendix only); for (g) BENCH_G_SECONDS, BENCH_G_LIGHT_SECONDS,
BENCH_G_CONNECTIONS, BENCH_G_RECORDS; BENCH_NOTE, a sentence for the results (e.g. what else
ran on the machine).
Diagnostics: BENCH_HQ_MODULE=bench.hqdiag runs HQ with its experiments (see that module).
Elasticsearch: LOGSPACE_ES_URL, else a dedicated node on BENCH_ES_PORT (9290) with
BENCH_ES_HEAP (2g), started and stopped here with `scripts/es`.

A figure that cannot be measured (an arm failed, its count did not add up) is reported as
"not measured: <why>" and the run goes on with the others.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import traceback
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from logspace.elastic.store import Store
from logspace.settings import Settings

from . import memory, pipeline, report
from .documents import Pool
from .fleet import FleetBench
from .load import Elasticsearch, Latency, LoadError, Throughput, offer, saturate, sender
from .overheadbench import OverheadBench
from .plan import UNMEASURED, Plan, chosen, env, parts
from .procs import DedicatedNode, HQProcess, cpu_seconds
from .report import Figure

PREFIX = "lsbench"
HERE = Path(__file__).resolve().parent
# What goes wrong in an arm: a refused or failed request, counts that do not add up.
ARM_ERRORS = (LoadError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


class Bench:
    def __init__(self, plan: Plan, node: DedicatedNode, es_url: str) -> None:
        self.plan = plan
        self.node = node
        self.es_url = es_url
        self.es = Elasticsearch(es_url, PREFIX)
        self.figures: list[Figure] = []
        self.appendix: list[str] = []
        # (f) and (g) are parts of their own in bench/results.md (see report.write_part).
        self.parts = parts()
        self.data: dict[str, Any] = {}
        self.hq: HQProcess | None = None
        self.session: aiohttp.ClientSession | None = None

    @property
    def pids(self) -> dict[str, int | None]:
        return {
            "es": self.node.pid(),
            "hq": self.hq.pid if self.hq else None,
            "loader": os.getpid(),
        }

    def send(self, arm: str) -> Any:
        assert self.session is not None
        assert self.hq is not None
        return sender(self.session, arm, self.es_url, self.hq.url)

    async def run(self) -> None:
        say(f"Elasticsearch {self.es_url}: installing HQ's templates under prefix {PREFIX!r}")
        store = Store(Settings(space_tokens={}, es_url=self.es_url, index_prefix=PREFIX))
        try:
            for line in await store.install_templates():
                say(f"  {line}")
        finally:
            await store.close()
        self.data["es_version"] = await self.es.version()
        log = HERE / "hq.log"
        log.unlink(missing_ok=True)
        self.hq = await asyncio.to_thread(HQProcess, self.es_url, PREFIX, log)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=300)
        )
        try:
            if "b" in self.plan.figures:
                self.in_process()
            if set("ace") & set(self.plan.figures):
                say(f"generating {self.plan.max_arm_events} events")
                pool = Pool.generate(self.plan.max_arm_events, PREFIX)
                wanted = [g for g in ("a", "ce") if set(g) & set(self.plan.figures)]
                best = await self.measured(wanted, self.ceiling(pool))
                if "a" in self.plan.figures and best is not None:
                    await self.measured(["a"], self.end_to_end(pool, best))
                if set("ce") & set(self.plan.figures) and best is not None:
                    await self.measured(["ce"], self.latency(pool))
                del pool
            if "d" in self.plan.figures:
                await self.measured(["d"], self.memory())
            if "g" in self.plan.figures:
                await self.measured(["g"], self.overhead())
        finally:
            await self.session.close()
            await asyncio.to_thread(self.hq.stop)
            await self.es.fresh_indices()
            await self.es.close()
        if "f" in self.plan.figures:
            await self.measured(["f"], self.fleet())

    async def measured(self, groups: list[str], work: Awaitable[Any]) -> Any:
        """Run one measurement; if it fails, report the figures of `groups` it had not
        reported yet as not measured, and go on with the next measurement."""
        try:
            return await work
        except Exception as error:  # the run goes on; the report says why
            if not isinstance(error, ARM_ERRORS):
                traceback.print_exc()
            why = f"{type(error).__name__}: {error}"[:300]
            say(f"not measured ({', '.join(groups)}): {why}")
            for group in groups:
                figures = self.parts[group].figures if group in self.parts else self.figures
                for key, name, must in UNMEASURED[group]:
                    if all(f.key != key for f in figures):
                        figures.append(Figure.not_measured(key, name, why, must))
            return None

    # -- (a) -------------------------------------------------------------------------------

    async def ceiling(self, pool: Pool) -> dict[str, Any]:
        """Direct `_bulk` over bulk size x concurrency; the best is the ceiling C_R."""
        grid = self.plan.sweep_grid()
        # A node that just started indexes slowly for a while (JIT, first segments).
        warmup = max(15.0, 5 * self.plan.sweep_seconds)
        say(f"warming Elasticsearch up ({warmup:.0f} s of direct _bulk, not counted)")
        try:
            await saturate(
                self.send("direct"),
                pool.bulk_bodies(len(pool), 1000),
                1000,
                len(pool),
                4,
                self.es,
                self.pids,
                time_limit=warmup,
            )
        except ARM_ERRORS as error:
            say(f"  warm-up: {error}")
        say(f"ceiling sweep of direct _bulk: {grid}, {self.plan.sweep_seconds} s each")
        rows, best = [], None
        failed = []
        for size, concurrency in grid:
            try:
                result = await saturate(
                    self.send("direct"),
                    pool.bulk_bodies(len(pool), size),
                    size,
                    len(pool),
                    concurrency,
                    self.es,
                    self.pids,
                    time_limit=self.plan.sweep_seconds,
                )
            except ARM_ERRORS as error:
                say(f"  bulk {size} x {concurrency}: not measured: {error}")
                failed.append(f"bulk {size} x {concurrency}: {error}")
                continue
            say(f"  bulk {size} x {concurrency}: {result.rate:.0f} events/s")
            rows.append((size, concurrency, result.rate, result.cpu_us_per_doc("es")))
            if best is None or result.rate > best["rate"]:
                best = {"size": size, "concurrency": concurrency, "rate": result.rate}
        if best is None:
            raise LoadError("no arm of the ceiling sweep could be measured: " + "; ".join(failed))
        self.data["sweep"] = rows
        self.appendix.append(
            "### Ceiling sweep (direct `_bulk`, one short arm each)\n\n"
            "| bulk size | concurrency | events/s | ES CPU-us/doc |\n|---|---|---|---|\n"
            + "\n".join(f"| {s} | {c} | {r:.0f} | {e:.0f} |" for s, c, r, e in rows)
            + f"\n\nCeiling C_R: {best['rate']:.0f} events/s at bulk size {best['size']}, "
            f"concurrency {best['concurrency']}; figures (a) use that configuration."
            + ("\n\nNot measured: " + "; ".join(failed) if failed else "")
        )
        return best

    async def end_to_end(self, pool: Pool, best: dict[str, Any]) -> None:
        size, concurrency = best["size"], best["concurrency"]
        # At least `min_arm_events`, so that a low estimate still gives a steady window.
        count = max(int(best["rate"] * self.plan.arm_seconds), self.plan.min_arm_events)
        count = min(count, len(pool))
        count -= count % size
        say(f"(a) {self.plan.pairs} ABBA pairs, {count} events, bulk {size} x {concurrency}")
        arms: dict[str, list[Throughput]] = {"direct": [], "hq": []}
        dropped = []
        for pair in range(self.plan.pairs):
            order = ("direct", "hq") if pair % 2 == 0 else ("hq", "direct")
            results: dict[str, Throughput] = {}
            for arm in order:
                bodies = (pool.bulk_bodies if arm == "direct" else pool.hq_bodies)(count, size)
                try:
                    result = await saturate(
                        self.send(arm), bodies, size, count, concurrency, self.es, self.pids
                    )
                except ARM_ERRORS as error:
                    say(f"  pair {pair + 1} {arm:6}: not measured: {error}")
                    dropped.append(f"pair {pair + 1} {arm}: {error}")
                    break
                finally:
                    del bodies
                results[arm] = result
                say(
                    f"  pair {pair + 1} {arm:6}: {result.rate:7.0f} events/s, ES "
                    f"{result.cpu_us_per_doc('es'):.0f} us/doc, HQ "
                    f"{result.cpu_us_per_doc('hq'):.1f} us/doc"
                )
            if len(results) == 2:
                for arm, result in results.items():
                    arms[arm].append(result)
        direct, hq = arms["direct"], arms["hq"]
        if not direct:
            raise LoadError("no pair of (a) could be measured: " + "; ".join(dropped))
        references = [d.rate for d in direct]
        ratios, rejected = report.keep_undisturbed(
            references, [h.rate / d.rate for d, h in zip(direct, hq, strict=True)]
        )
        self.figures.append(
            Figure(
                "a",
                "HQ events/s / direct `_bulk` events/s",
                ratios,
                ">= 0.90",
                ">= 0.95",
                rejected=rejected,
            )
        )
        self.figures.append(
            Figure(
                "a'",
                "HQ CPU-s / ES CPU-s (HQ arm)",
                [h.cpu["hq"] / h.cpu["es"] for h in hq],
                "<= 0.10",
                "<= 0.05",
            )
        )
        self.figures.append(
            Figure(
                "a''",
                "ES CPU-us/doc, HQ arm / direct arm",
                [
                    h.cpu_us_per_doc("es") / d.cpu_us_per_doc("es")
                    for d, h in zip(direct, hq, strict=True)
                ],
                "<= 1.05",
                "<= 1.00",
                gated=False,
            )
        )
        rows = []
        for i, (d, h) in enumerate(zip(direct, hq, strict=True)):
            rows.append(
                f"| {i + 1} | {d.rate:.0f} | {h.rate:.0f} | {h.rate / d.rate:.3f} | "
                f"{d.cpu_us_per_doc('es'):.0f} | {h.cpu_us_per_doc('es'):.0f} | "
                f"{h.cpu_us_per_doc('hq'):.1f} | {d.cpu_us_per_doc('loader'):.1f} | "
                f"{h.cpu_us_per_doc('loader'):.1f} |"
            )
        self.appendix.append(
            f"### (a) End to end: {count} events per arm, bulk size {size}, "
            f"{concurrency} requests in flight\n\n"
            "Rates are the events the loader saw acknowledged over the window in which the "
            "10th to the 90th percent of them were; CPU is utime+stime from /proc over the same "
            "window. After each arm, `_count` (refreshed) equals the events acknowledged.\n\n"
            + (f"Pairs not measured: {'; '.join(dropped)}\n\n" if dropped else "")
            + "| pair | direct events/s | HQ events/s | ratio | ES CPU-us/doc direct | "
            "ES CPU-us/doc HQ | HQ CPU-us/event | loader CPU-us/doc direct | "
            "loader CPU-us/event HQ |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
        )
        self.data["end_to_end"] = {
            "direct": [d.rate for d in direct],
            "hq": [h.rate for h in hq],
            "hq_cpu_us": [h.cpu_us_per_doc("hq") for h in hq],
        }

    # -- (c), (e) --------------------------------------------------------------------------

    async def latency_ceiling(self, pool: Pool, size: int) -> float:
        """The direct ceiling at the bulk size of (c), which the loads of (c) are shares of.

        Not the sweep's best: that is usually at a larger bulk size, which costs Elasticsearch
        less per document, so "80 %" of it was near or past saturation for requests of `size`
        events. And a short sweep arm overstates what the loader sustains. So: three closed-loop
        arms at `size` with the sweep's best concurrency for it; their median."""
        rows = [row for row in self.data["sweep"] if row[0] == size]
        concurrency = max(rows, key=lambda row: row[2])[1] if rows else 4
        count = min(
            len(pool),
            max(int(rows[0][2] * self.plan.arm_seconds) if rows else 0, self.plan.min_arm_events),
        )
        count -= count % size
        rates, failed = [], []
        for _ in range(3):
            try:
                result = await saturate(
                    self.send("direct"),
                    pool.bulk_bodies(count, size),
                    size,
                    count,
                    concurrency,
                    self.es,
                    self.pids,
                )
            except ARM_ERRORS as error:
                say(f"  (c) ceiling arm not measured: {error}")
                failed.append(str(error))
                continue
            rates.append(result.rate)
        if not rates:
            raise LoadError("no arm of the ceiling of (c) could be measured: " + "; ".join(failed))
        ceiling = statistics.median(rates)
        say(
            f"(c) direct ceiling at bulk {size} x {concurrency}: {ceiling:.0f} events/s "
            f"(median of {', '.join(f'{r:.0f}' for r in rates)})"
        )
        self.data["latency_ceiling"] = {"size": size, "concurrency": concurrency, "rates": rates}
        self.appendix.append(
            f"### (c) Ceiling at bulk size {size}\n\nThree closed-loop direct arms of {count} "
            f"events at concurrency {concurrency}: "
            + ", ".join(f"{r:.0f}" for r in rates)
            + f" events/s; the loads of (c) are shares of their median, {ceiling:.0f}."
        )
        return ceiling

    async def latency(self, pool: Pool) -> None:
        size = self.plan.latency_bulk
        ceiling = await self.latency_ceiling(pool, size)
        # An arm never sends an event twice (a re-sent id would be stored once), so a long
        # arm at 80 % needs events of its own.
        needed = int(0.8 * ceiling * self.plan.latency_seconds) + size
        if needed > len(pool):
            say(f"generating {needed} events for (c)")
            pool = Pool.generate(needed, PREFIX, seed=8)
        bodies = {
            "direct": pool.bulk_bodies(len(pool), size),
            "hq": pool.hq_bodies(len(pool), size),
        }
        appendix = [
            "| load | pair | arm | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | requests | "
            "refused | late starts | HQ CPU-us/event | HQ run-queue wait ms/request |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        refusals: list[str] = []
        for share in (0.5, 0.8):
            rate = share * ceiling
            say(f"(c) {share:.0%} of C_R = {rate:.0f} events/s, bulk {size}, open loop")
            arms: dict[str, list[Latency]] = {"direct": [], "hq": []}
            dropped = []
            for pair in range(self.plan.pairs):
                order = ("direct", "hq") if pair % 2 == 0 else ("hq", "direct")
                results: dict[str, Latency] = {}
                for arm in order:
                    try:
                        result = await offer(
                            self.send(arm),
                            bodies[arm],
                            size,
                            rate,
                            self.plan.latency_seconds,
                            self.es,
                            self.pids,
                        )
                    except ARM_ERRORS as error:
                        say(f"  pair {pair + 1} {arm:6}: not measured: {error}")
                        dropped.append(f"{share:.0%} pair {pair + 1} {arm}: {error}")
                        break
                    results[arm] = result
                    hq_us = 1e6 * result.cpu["hq"] / max(result.events, 1)
                    say(
                        f"  pair {pair + 1} {arm:6}: p50 {result.p50:.1f} ms, p99 "
                        f"{result.p99:.1f} ms, {result.refused} refused, HQ {hq_us:.2f} us/event"
                    )
                    appendix.append(
                        f"| {share:.0%} | {pair + 1} | {arm} | {result.p50:.1f} | "
                        f"{result.p90:.1f} | {result.p99:.1f} | {result.p999:.1f} | "
                        f"{result.max:.1f} | {result.requests} | {result.refused} | "
                        f"{result.late_starts} | {hq_us:.2f} | "
                        f"{1000 * result.waited['hq'] / max(result.requests, 1):.1f} |"
                    )
                    refusals += [f"{arm}: {f}" for f in result.failures]
                if len(results) == 2:
                    for arm, result in results.items():
                        arms[arm].append(result)
            direct, hq = arms["direct"], arms["hq"]
            if not hq:
                why = "no pair could be measured: " + "; ".join(dropped)
                self.figures.append(
                    Figure.not_measured(
                        f"c{share:.0%}", f"p99 HQ / p99 direct at {share:.0%} of C_R", why, "<= 1.5"
                    )
                )
                if share == 0.8:
                    self.figures.append(
                        Figure.not_measured("e", "HQ CPU per event at 80 % of C_R", why, "<= 5")
                    )
                appendix.append(f"| {share:.0%} | not measured: {why} |")
                continue
            if dropped:
                appendix.append(f"| {share:.0%} | pairs not measured: {'; '.join(dropped)} |")
            self.figures.append(
                Figure(
                    f"c{share:.0%}",
                    f"p99 HQ / p99 direct at {share:.0%} of C_R",
                    [h.p99 / max(d.p99, 0.001) for d, h in zip(direct, hq, strict=True)],
                    "<= 1.5",
                    "<= 1.2",
                )
            )
            self.figures.append(
                Figure(
                    f"c{share:.0%}-p50",
                    f"p50 HQ - p50 direct at {share:.0%} of C_R",
                    [h.p50 - d.p50 for d, h in zip(direct, hq, strict=True)],
                    "<= 5",
                    "<= 2",
                    unit="ms",
                    gated=False,
                )
            )
            self.figures.append(
                Figure(
                    f"c{share:.0%}-refused",
                    f"requests refused (503/429) at {share:.0%} of C_R, both arms",
                    [float(d.refused + h.refused) for d, h in zip(direct, hq, strict=True)],
                    "<= 0",
                    "<= 0",
                    gated=False,
                )
            )
            if share == 0.8:
                self.figures.append(
                    Figure(
                        "e",
                        "HQ CPU per event at 80 % of C_R",
                        [1e6 * h.cpu["hq"] / max(h.events, 1) for h in hq],
                        "<= 5",
                        "<= 3",
                        unit="us",
                    )
                )
        self.appendix.append(
            f"### (c) Latency, open loop, bulk size {size} in both arms, "
            f"{self.plan.latency_seconds:.0f} s per arm (first 2 s not recorded)\n\n"
            "Latency runs from each request's intended start (t0 + k / rate) to its answer: "
            "HQ's 202 (after Elasticsearch acknowledged every event) or `_bulk`'s 200. The "
            "run-queue wait is how long HQ's threads waited for a CPU (schedstat), per request: "
            "on a busy box the HQ path must be scheduled twice more than the direct one.\n\n"
            + "\n".join(appendix)
            + ("\n\nRefused: " + "; ".join(refusals[:6]) if refusals else "")
        )

    # -- (f) and (g), each a part of its own in results.md -----------------------------------

    async def fleet(self) -> None:
        fleet = FleetBench(self.plan.fleet, self.es_url, self.node.pid, PREFIX, say)
        try:
            await fleet.run()
        finally:
            self.parts["f"].figures += fleet.figures
            self.parts["f"].appendix += fleet.appendix
            self.data.update(fleet.data)

    async def overhead(self) -> None:
        assert self.hq is not None
        g = OverheadBench(
            self.plan.g,
            self.plan.pairs,
            (self.hq.url, self.hq.pid),
            (self.es_url, self.node.pid()),
            PREFIX,
            say,
        )
        await g.run()
        self.parts["g"].figures += g.figures
        self.parts["g"].appendix += g.appendix
        self.data.update(g.data)

    # -- (b) -------------------------------------------------------------------------------

    def in_process(self) -> None:
        pairs = max(self.plan.pairs, 5) + 2
        say(f"(b) in process, {pairs} ABBA pairs per payload")
        rows = []
        for payload in pipeline.payloads():
            bulk_ratios = pipeline.ratio_pairs(payload, pipeline.bulk_reference, pairs)
            array_ratios = pipeline.ratio_pairs(payload, pipeline.array_reference, pairs)
            us = pipeline.us_per_event(payload)
            say(
                f"  {payload.name}: {statistics.median(bulk_ratios):.2f} of bare orjson "
                f"(per-event bulk reference), {statistics.median(array_ratios):.2f} "
                f"(whole-array reference), {us:.2f} us/event"
            )
            rows.append(
                f"| {payload.name} | {len(payload.body) // payload.events} | "
                f"{statistics.median(bulk_ratios):.2f} (worst {min(bulk_ratios):.2f}) | "
                f"{statistics.median(array_ratios):.2f} (worst {min(array_ratios):.2f}) | "
                f"{us:.2f} |"
            )
            if payload.name == "500 events":
                self.figures.append(
                    Figure(
                        "b",
                        "decode+validate+encode / bare orjson loads+dumps (500 events)",
                        bulk_ratios,
                        ">= 0.75",
                        ">= 1.0",
                    )
                )
                self.figures.append(
                    Figure(
                        "b-array",
                        "same, against `orjson.dumps(orjson.loads(body))` of the array",
                        array_ratios,
                        "",
                    )
                )
        self.appendix.append(
            "### (b) In process, per payload\n\n"
            "Reference: `b''.join(ACTION + orjson.dumps(e) + b'\\n' for e in "
            "orjson.loads(body))` (design section 5.3); the whole-array reference is "
            "`orjson.dumps(orjson.loads(body))`. Ratios are events/s of HQ's pipeline over "
            "the reference's.\n\n"
            "| payload | bytes/event | ratio, bulk reference | ratio, array reference | "
            "HQ us/event |\n|---|---|---|---|---|\n" + "\n".join(rows)
        )

    # -- (d) -------------------------------------------------------------------------------

    async def memory(self) -> None:
        ks = [int(k) for k in self.plan.memory_k.split(",")]
        say(f"(d) memory, K = {ks}, {self.plan.memory_repeats} repeats, fresh HQ each")
        pool = Pool.generate((max(ks) + 1) * self.plan.memory_body_events, PREFIX, seed=3)
        log = HERE / "hq-memory.log"
        log.unlink(missing_ok=True)
        results: dict[int, list[memory.Held]] = {k: [] for k in ks}
        for _ in range(self.plan.memory_repeats):
            for k in ks:
                held = await memory.hold(
                    k,
                    pool,
                    self.plan.memory_body_events,
                    self.es_url,
                    PREFIX,
                    log,
                    self.plan.memory_hold_seconds + 0.02 * k,
                )
                results[k].append(held)
                say(
                    f"  K={k}: {held.per_request:.2f} x body ({held.body_bytes} B), "
                    f"RSS {held.rss_before_kib // 1024} -> {held.peak_kib // 1024} MiB"
                )
        rows = []
        for k in ks:
            values = [h.per_request for h in results[k]]
            before = statistics.median(h.rss_before_kib for h in results[k]) / 1024
            peak = statistics.median(h.peak_kib for h in results[k]) / 1024
            rows.append(
                f"| {k} | {results[k][0].body_bytes} | {statistics.median(values):.2f} | "
                f"{max(values):.2f} | {before:.0f} | {peak:.0f} |"
            )
        gated = [k for k in ks if k >= 8] or ks
        worst_k = max(gated, key=lambda k: statistics.median(h.per_request for h in results[k]))
        self.figures.append(
            Figure(
                "d",
                f"peak memory per in-flight request / body (K={worst_k}, worst K >= 8)",
                [h.per_request for h in results[worst_k]],
                "<= 4",
                "<= 2.5",
                unit="x",
            )
        )
        idle = [h.idle_kib / 1024 for k in ks for h in results[k]]
        self.figures.append(Figure("d'", "idle RSS per worker", idle, "<= 80", "<= 50", unit="MiB"))
        self.appendix.append(
            "### (d) Memory, K requests held by a proxy that delays Elasticsearch's answers\n\n"
            "A fresh HQ per measurement, one warm-up request, then K at once. Figure: "
            "(peak RSS - RSS before) / (K x body bytes); peak is the higher of VmHWM and "
            "VmRSS sampled every 20 ms.\n\n"
            "| K | body bytes | median x body | worst | RSS before MiB | peak MiB |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows)
        )


async def main(argv: list[str]) -> int:
    plan = Plan(figures=chosen(argv))
    started = datetime.now(UTC)
    load_before = report.load_average()
    node = DedicatedNode(int(os.environ.get("BENCH_ES_PORT", "9290")), env("BENCH_ES_HEAP", "2g"))
    say("starting the dedicated Elasticsearch node" if not node.url else f"using {node.url}")
    es_url = await asyncio.to_thread(node.start)
    bench = Bench(plan, node, es_url)
    cpu_before = cpu_seconds(os.getpid())
    try:
        await bench.run()
    finally:
        await asyncio.to_thread(node.stop)
    run = {
        "started": f"{started:%Y-%m-%d %H:%M}",
        "target": report.target(plan.mode, plan.figures),
        "mode": plan.mode,
        "plan": plan.__dict__,
        "seconds": round((datetime.now(UTC) - started).total_seconds()),
        "load_before": load_before,
        "load_after": report.load_average(),
        # Free text for the results, e.g. what else ran on the machine.
        "note": os.environ.get("BENCH_NOTE", ""),
        "loader_cpu_s": round(cpu_seconds(os.getpid()) - cpu_before, 1),
        "machine": report.machine(bench.data.get("es_version", "?")),
        "data": bench.data,
    }
    notes_file = HERE / "optimisations.md"
    notes = notes_file.read_text() if notes_file.exists() else ""
    figures = bench.figures + [f for part in bench.parts.values() for f in part.figures]
    report.record(run, figures)
    written = []
    print()
    if set(report.CORE) & set(plan.figures):
        appendix = "## Appendix: absolute figures\n\n" + "\n\n".join(bench.appendix)
        print(report.write(run, bench.figures, appendix, notes))
        written.append(f"bench/{report.body_name(run)}.md")
    for key, part in bench.parts.items():
        if key in plan.figures:
            print(report.write_part(run, key, part.title, part.figures, part.text(), part.method))
            written.append(f"part {key} of bench/{report.results_name(run)}.md")
    print(f"\n{', '.join(written)} written ({run['seconds']} s)")
    # A figure that misses its must target, or could not be measured, fails the run.
    return 0 if all(f.passes for f in figures) else 1


if __name__ == "__main__":
    sys.exit(uvloop.run(main(sys.argv[1:])))
