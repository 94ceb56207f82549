"""Figures (c) and (e): p50 and p99 latency, open loop, at 50 % and 80 % of the direct
ceiling at (c)'s bulk size, HQ against direct `_bulk`; HQ's CPU per event at 80 %."""

from __future__ import annotations

import statistics

from .documents import Pool
from .load import Latency, LoadError, offer, saturate
from .report import Figure
from .run import ARM_ERRORS, PREFIX, Run, say


def drain_bound(seconds: float) -> float:
    """How long after its last start an arm of `seconds` may take to answer and still count
    as keeping pace: a second, or 5 % of the arm. Below capacity, the last request waits about
    as long as any other (p99 at 50 % was 0.2-0.6 s on 1 Dec); above it, the backlog grows
    with the arm (2-8 s in 30-s arms that day)."""
    return max(1.0, 0.05 * seconds)


async def latency_ceiling(run: Run, pool: Pool, size: int, share: float) -> float:
    """The direct ceiling at the bulk size of (c), which the load `share` of (c) is a share of,
    measured just before that load: the box's speed drifts within minutes.

    Not the sweep's best: that is usually at a larger bulk size, which costs Elasticsearch
    less per document, so "80 %" of it was near or past saturation for requests of `size`
    events. And a short sweep arm overstates what the loader sustains. So: three closed-loop
    arms at `size` with the sweep's best concurrency for it; their median."""
    rows = [row for row in run.data["sweep"] if row[0] == size]
    concurrency = max(rows, key=lambda row: row[2])[1] if rows else 4
    count = min(
        len(pool),
        max(int(rows[0][2] * run.plan.arm_seconds) if rows else 0, run.plan.min_arm_events),
    )
    count -= count % size
    rates, failed = [], []
    for _ in range(3):
        try:
            result = await saturate(
                run.send("direct"),
                pool.bulk_bodies(count, size),
                size,
                count,
                concurrency,
                run.es,
                run.pids,
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
        f"(c) direct ceiling at bulk {size} x {concurrency} before the {share:.0%} load: "
        f"{ceiling:.0f} events/s (median of {', '.join(f'{r:.0f}' for r in rates)})"
    )
    run.data.setdefault("latency_ceilings", {})[f"{share:.0%}"] = {
        "size": size,
        "concurrency": concurrency,
        "rates": rates,
    }
    run.appendix.append(
        f"### (c) Ceiling at bulk size {size}, before the {share:.0%} load\n\nThree "
        f"closed-loop direct arms of {count} events at concurrency {concurrency}: "
        + ", ".join(f"{r:.0f}" for r in rates)
        + f" events/s; the load is {share:.0%} of their median, {ceiling:.0f}."
    )
    return ceiling


async def latency(run: Run, pool: Pool) -> None:
    size = run.plan.latency_bulk
    bodies: dict[str, list[bytes]] = {}
    appendix = [
        "| load | pair | arm | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | requests | "
        "refused | late starts | drain s | HQ CPU-us/event | HQ run-queue wait ms/request | "
        "CPU busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    refusals: list[str] = []
    for share in (0.5, 0.8):
        try:
            ceiling = await latency_ceiling(run, pool, size, share)
        except LoadError as error:
            if share == 0.5:
                raise  # nothing measured yet: `Run.measured` reports (c) and (e)
            why = f"its ceiling could not be measured: {error}"
            run.figures.append(
                Figure.not_measured("c80%", "p99 HQ / p99 direct at 80% of C_R", why, "<= 1.5")
            )
            run.figures.append(
                Figure.not_measured("e", "HQ CPU per event at 80 % of C_R", why, "<= 5")
            )
            appendix.append(f"| {share:.0%} | not measured: {why} |")
            break
        rate = share * ceiling
        # An arm never sends an event twice (a re-sent id would be stored once), so a long
        # arm needs events of its own: enough for 80 % of a ceiling 10 % above this one, so
        # that the 80 % load seldom needs new ones.
        needed = int(0.8 * 1.1 * ceiling * run.plan.latency_seconds) + size
        if needed > len(pool) or not bodies:
            if needed > len(pool):
                say(f"generating {needed} events for (c)")
                pool = Pool.generate(needed, PREFIX, seed=8)
            bodies = {
                "direct": pool.bulk_bodies(len(pool), size),
                "hq": pool.hq_bodies(len(pool), size),
            }
        say(f"(c) {share:.0%} of C_R = {rate:.0f} events/s, bulk {size}, open loop")
        arms: dict[str, list[Latency]] = {"direct": [], "hq": []}
        dropped = []
        for pair in range(run.plan.pairs):
            order = ("direct", "hq") if pair % 2 == 0 else ("hq", "direct")
            results: dict[str, Latency] = {}
            for arm in order:
                try:
                    result = await offer(
                        run.send(arm),
                        bodies[arm],
                        size,
                        rate,
                        run.plan.latency_seconds,
                        run.es,
                        run.pids,
                    )
                except ARM_ERRORS as error:
                    say(f"  pair {pair + 1} {arm:6}: not measured: {error}")
                    dropped.append(f"{share:.0%} pair {pair + 1} {arm}: {error}")
                    break
                results[arm] = result
                hq_us = 1e6 * result.cpu["hq"] / max(result.events, 1)
                say(
                    f"  pair {pair + 1} {arm:6}: p50 {result.p50:.1f} ms, p99 "
                    f"{result.p99:.1f} ms, drain {result.drain:.2f} s, {result.refused} refused, "
                    f"HQ {hq_us:.2f} us/event, "
                    f"CPU busy {result.busy:.0%}"
                )
                appendix.append(
                    f"| {share:.0%} | {pair + 1} | {arm} | {result.p50:.1f} | "
                    f"{result.p90:.1f} | {result.p99:.1f} | {result.p999:.1f} | "
                    f"{result.max:.1f} | {result.requests} | {result.refused} | "
                    f"{result.late_starts} | {result.drain:.2f} | {hq_us:.2f} | "
                    f"{1000 * result.waited['hq'] / max(result.requests, 1):.1f} | "
                    f"{result.busy:.0%} |"
                )
                refusals += [f"{arm}: {f}" for f in result.failures]
            if len(results) == 2:
                for arm, result in results.items():
                    arms[arm].append(result)
        direct, hq = arms["direct"], arms["hq"]
        # A direct arm that did not keep pace with its rate ran above what the box could do
        # then (its speed drifts; the ceiling was measured minutes before): both arms of the
        # pair measure a growing backlog, and their ratio says nothing of HQ (it came out at
        # 0.59 in such a pair). Such pairs are left out of (c); an HQ arm that did not keep
        # pace while its direct arm did counts, as it should.
        bound = drain_bound(run.plan.latency_seconds)
        paced = [(d, h) for d, h in zip(direct, hq, strict=True) if d.drain <= bound]
        above = len(direct) - len(paced)
        if above:
            appendix.append(
                f"| {share:.0%} | {above} pair(s) left out of c{share:.0%}: the direct arm "
                f"took more than {bound:.1f} s after its last start to answer (above capacity) |"
            )
        if not hq:
            why = "no pair could be measured: " + "; ".join(dropped)
            run.figures.append(
                Figure.not_measured(
                    f"c{share:.0%}", f"p99 HQ / p99 direct at {share:.0%} of C_R", why, "<= 1.5"
                )
            )
            if share == 0.8:
                run.figures.append(
                    Figure.not_measured("e", "HQ CPU per event at 80 % of C_R", why, "<= 5")
                )
            appendix.append(f"| {share:.0%} | not measured: {why} |")
            continue
        if dropped:
            appendix.append(f"| {share:.0%} | pairs not measured: {'; '.join(dropped)} |")
        if paced:
            run.figures.append(
                Figure(
                    f"c{share:.0%}",
                    f"p99 HQ / p99 direct at {share:.0%} of C_R",
                    [h.p99 / max(d.p99, 0.001) for d, h in paced],
                    "<= 1.5",
                    "<= 1.2",
                    rejected=above,
                    rejected_why="above capacity",
                )
            )
            run.figures.append(
                Figure(
                    f"c{share:.0%}-p50",
                    f"p50 HQ - p50 direct at {share:.0%} of C_R",
                    [h.p50 - d.p50 for d, h in paced],
                    "<= 5",
                    "<= 2",
                    unit="ms",
                    gated=False,
                    rejected=above,
                    rejected_why="above capacity",
                )
            )
        else:
            why = (
                f"the direct arm ran above capacity in every pair (it took more than "
                f"{bound:.1f} s after its last start to answer): the box was slower than "
                "when the ceiling was measured"
            )
            run.figures.append(
                Figure.not_measured(
                    f"c{share:.0%}", f"p99 HQ / p99 direct at {share:.0%} of C_R", why, "<= 1.5"
                )
            )
        run.figures.append(
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
            run.figures.append(
                Figure(
                    "e",
                    "HQ CPU per event at 80 % of C_R",
                    [1e6 * h.cpu["hq"] / max(h.events, 1) for h in hq],
                    "<= 5",
                    "<= 3",
                    unit="us",
                )
            )
    run.appendix.append(
        f"### (c) Latency, open loop, bulk size {size} in both arms, "
        f"{run.plan.latency_seconds:.0f} s per arm (first 2 s not recorded)\n\n"
        "Latency runs from each request's intended start (t0 + k / rate) to its answer: "
        "HQ's 202 (after Elasticsearch acknowledged every event) or `_bulk`'s 200. The "
        "run-queue wait is how long HQ's threads waited for a CPU (schedstat), per request: "
        "on a busy box the HQ path must be scheduled twice more than the direct one. CPU busy: "
        "the CPU time of Elasticsearch, HQ and the loader over the arm, as a share of all the "
        "machine's cores; HQ's own share raises the HQ arm's, and a queue's waits grow as "
        "1 / (1 - busy). Drain: seconds from the last intended start to the last answer; a "
        "pair whose direct arm took longer than the bound (see `drain_bound`) ran above the "
        "box's capacity at the time and is left out of (c).\n\n"
        + "\n".join(appendix)
        + ("\n\nRefused: " + "; ".join(refusals[:6]) if refusals else "")
    )
