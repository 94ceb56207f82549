"""Figure (f4): p99 latency through HQ at a fixed rate of half of HQ's fleet maximum, open loop
(`openloop.py`), with the direct 6-event `_bulk` at the same rate as a reference; and the
optional cost curve (BENCH_FLEET_CURVE): Elasticsearch's CPU per event at fixed rates."""

from __future__ import annotations

import asyncio
import os
import statistics

from . import openloop
from .fleetrun import FleetRun, figure, port, put_events
from .load import LoadError
from .procs import SyscallCount, connections_to, cpu_seconds, run_queue_seconds, tree_cpu_seconds


async def fixed_rate(run: FleetRun) -> None:
    assert run.hq is not None
    hq_rates = [a["rate"] for a in run.data.get("fleet", {}).get("hq", [])]
    if not hq_rates:
        run.figures.append(figure("f4", [], "no HQ fleet maximum was measured"))
        return
    rate = 0.5 * statistics.median(hq_rates)
    per_second = rate / 6
    seconds = run.plan.latency_seconds + 2.0
    count = int(per_second * seconds)
    run.say(
        f"(f4) {rate:.0f} events/s ({per_second:.0f} requests/s) at a fixed rate, "
        f"{run.plan.connections} connections, {run.plan.latency_seconds:.0f} s"
    )
    rows, p99s, why = [], [], ""
    for pair in range(run.plan.latency_pairs):
        order = ("hq", "direct6") if pair % 2 == 0 else ("direct6", "hq")
        for arm in order:
            try:
                row, p99 = await fixed_arm(run, arm, per_second, count, str(pair + 1))
            except (LoadError, OSError) as error:
                why = f"{arm}: {error}"
                run.say(f"  {arm}: not measured: {error}")
                continue
            rows.append(row)
            if arm == "hq":
                p99s.append(p99)
    run.figures.append(figure("f4", p99s, why))
    run.appendix.append(
        f"### (f4) Fixed rate: {rate:.0f} events/s ({per_second:.0f} requests of 6 events/s) "
        f"over {run.plan.connections} connections, {run.plan.latency_seconds:.0f} s timed "
        "after 2 s\n\n"
        "Open loop (`bench/openloop.py`): request k is due at t0 + k / rate and goes out on "
        "a free connection, or waits for one; latency runs from the due time to the answer "
        "(HQ's 202 after Elasticsearch acknowledged, or `_bulk`'s 200). The direct arm sends "
        "the same kind of batches as `_bulk` at the same rate: the latency Elasticsearch "
        "itself gives, and its CPU per event at this load.\n\n" + FIXED_HEADER + "\n".join(rows)
    )


async def fixed_arm(
    run: FleetRun, arm: str, per_second: float, count: int, label: str
) -> tuple[str, float]:
    """One open-loop arm at `per_second` requests of 6 events: its appendix row, its p99."""
    assert run.hq is not None
    target = run.hq.url if arm == "hq" else run.es_url
    host, tcp_port = target.removeprefix("http://").split(":")
    run.generators += 1
    batches = run.fleet.batches(count, generator=0x100 + run.generators)
    if arm == "hq":
        requests = [put_events(host, tcp_port, b) for b in batches]
    else:
        requests = [
            openloop.request_bytes(
                "POST",
                f"{host}:{tcp_port}",
                "/_bulk?filter_path=errors",
                {"Content-Type": "application/x-ndjson"},
                b.bulk_body(run.prefix),
            )
            for b in batches
        ]
    seeded = await run.fresh()
    client = openloop.Client(host, int(tcp_port))
    await client.open(run.plan.connections)
    # HQ with its children; not the loader's tree, which holds HQ.
    cpu_of = {"es": cpu_seconds, "hq": tree_cpu_seconds, "loader": cpu_seconds}
    pids = {"es": run.es_pid(), "hq": run.hq.pid, "loader": os.getpid()}
    before = {n: cpu_of[n](p) for n, p in pids.items()}
    waited = run_queue_seconds(run.hq.pid)
    syscalls = SyscallCount(pids["es"], run.workdir / f"fixed-{arm}.perf")
    pool = 0
    es_port = port(run.es_url)
    try:
        offered = asyncio.create_task(
            openloop.offer(client, requests, per_second, 202 if arm == "hq" else b'{"errors":false')
        )
        while not offered.done():
            if arm == "hq":
                pool = max(pool, connections_to(run.hq.pid, es_port))
            await asyncio.wait({offered}, timeout=1.0)
        result = offered.result()
    finally:
        counted = await asyncio.to_thread(syscalls.stop)
        await client.close()
    cpu = {n: cpu_of[n](p) - before[n] for n, p in pids.items()}
    waited = run_queue_seconds(run.hq.pid) - waited
    stored = await run.es.refreshed_count() - seeded
    if result.refused or stored != 6 * result.acknowledged:
        raise LoadError(
            f"{result.refused} refused ({result.failures[:2]}), _count {stored} after "
            f"{result.acknowledged} acknowledged requests of 6 events"
        )
    events = 6 * result.acknowledged
    run.say(
        f"  {label} {arm:7}: p50 {result.ms(50):.1f} ms, p99 {result.ms(99):.1f} ms, "
        f"max {result.max_ms:.0f} ms, ES {1e6 * cpu['es'] / events:.1f} us/event"
    )
    per_request = {k: v / max(result.requests, 1) for k, v in counted.items()}
    run.data.setdefault("fleet_fixed", []).append(
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
    row = (
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
    return row, result.ms(99)


async def curve(run: FleetRun) -> None:
    """ES CPU per event at each offered rate of BENCH_FLEET_CURVE, through HQ and direct:
    whether Elasticsearch's cost per event depends on who sends or on how much."""
    rates = [float(r) for r in run.plan.curve.split(",") if r.strip()]
    if not rates:
        return
    run.say(f"(f) cost curve at {rates} events/s, {run.plan.curve_seconds:.0f} s each")
    rows = []
    for rate in rates:
        for arm in ("hq", "direct6"):
            count = int(rate / 6 * (run.plan.curve_seconds + 2))
            try:
                rows.append((await fixed_arm(run, arm, rate / 6, count, f"{rate:.0f}/s"))[0])
            except (LoadError, OSError) as error:
                rows.append(f"| {rate:.0f}/s | {arm} | not measured: {error} |")
    run.appendix.append(
        "### (f) Cost curve: the fleet's batches at fixed rates, through HQ and direct\n\n"
        + FIXED_HEADER
        + "\n".join(rows)
    )


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
