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
Each run also records what the box charges a process for waking from idle, before and after
(bench/wakecost.py), beside the share of CPU time the hypervisor took (`stolen`).
Elasticsearch: LOGSPACE_ES_URL, else a dedicated node on BENCH_ES_PORT (9290) with
BENCH_ES_HEAP (2g), started and stopped here with `scripts/es`.

A figure that cannot be measured (an arm failed, its count did not add up) is reported as
"not measured: <why>" and the run goes on with the others.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import uvloop

from logspace.elastic.store import Store
from logspace.settings import Settings

from . import latencybench, memory, pipeline, report, throughputbench, wakecost
from .documents import Pool
from .fleet import FleetBench
from .overheadbench import OverheadBench
from .plan import UNMEASURED, Plan, chosen, env
from .procs import DedicatedNode, HQProcess, cpu_seconds
from .report import Figure
from .run import ARM_ERRORS, HERE, PREFIX, Run, say


class Bench(Run):
    """The run: each figure's measurement in turn, from the modules that measure it."""

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
                pipeline.figure(self)
            if set("ace") & set(self.plan.figures):
                say(f"generating {self.plan.max_arm_events} events")
                pool = Pool.generate(self.plan.max_arm_events, PREFIX)
                wanted = [g for g in ("a", "ce") if set(g) & set(self.plan.figures)]
                best = await self.measured(wanted, throughputbench.ceiling(self, pool))
                if "a" in self.plan.figures and best is not None:
                    await self.measured(["a"], throughputbench.end_to_end(self, pool, best))
                if set("ce") & set(self.plan.figures) and best is not None:
                    await self.measured(["ce"], latencybench.latency(self, pool))
                del pool
            if "d" in self.plan.figures:
                await self.measured(["d"], memory.figure(self))
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


async def main(argv: list[str]) -> int:
    plan = Plan(figures=chosen(argv))
    started = datetime.now(UTC)
    load_before = report.load_average()
    ticks_before = report.cpu_ticks()
    # Before anything of the run starts, and again after it all stopped: the box alone.
    waking = {"before": await asyncio.to_thread(wakecost.measure)}
    say(f"waking from idle, before: {wakecost.summary(waking['before'])}")
    node = DedicatedNode(int(os.environ.get("BENCH_ES_PORT", "9290")), env("BENCH_ES_HEAP", "2g"))
    say("starting the dedicated Elasticsearch node" if not node.url else f"using {node.url}")
    es_url = await asyncio.to_thread(node.start)
    bench = Bench(plan, node, es_url)
    cpu_before = cpu_seconds(os.getpid())
    try:
        await bench.run()
    finally:
        await asyncio.to_thread(node.stop)
    waking["after"] = await asyncio.to_thread(wakecost.measure)
    say(f"waking from idle, after: {wakecost.summary(waking['after'])}")
    run = {
        "started": f"{started:%Y-%m-%d %H:%M}",
        "target": report.target(plan.mode, plan.figures),
        "mode": plan.mode,
        "plan": plan.__dict__,
        "seconds": round((datetime.now(UTC) - started).total_seconds()),
        "load_before": load_before,
        "load_after": report.load_average(),
        # A virtual machine's CPUs taken by its hypervisor for others: a disturbed run.
        "stolen": report.stolen_share(ticks_before, report.cpu_ticks()),
        # Free text for the results, e.g. what else ran on the machine.
        "note": os.environ.get("BENCH_NOTE", ""),
        "loader_cpu_s": round(cpu_seconds(os.getpid()) - cpu_before, 1),
        # What the box charges for waking from idle (bench/wakecost.py), before and after.
        "waking": waking,
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
