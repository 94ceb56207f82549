"""Figure (a): a sweep of direct `_bulk` for the ceiling C_R, then HQ against direct `_bulk`
end to end at the ceiling's bulk size and concurrency, arms alternated."""

from __future__ import annotations

from typing import Any

from . import report
from .documents import Pool
from .load import LoadError, Throughput, saturate
from .report import Figure
from .run import ARM_ERRORS, Run, say


async def ceiling(run: Run, pool: Pool) -> dict[str, Any]:
    """Direct `_bulk` over bulk size x concurrency; the best is the ceiling C_R."""
    grid = run.plan.sweep_grid()
    # A node that just started indexes slowly for a while (JIT, first segments).
    warmup = max(15.0, 5 * run.plan.sweep_seconds)
    say(f"warming Elasticsearch up ({warmup:.0f} s of direct _bulk, not counted)")
    try:
        await saturate(
            run.send("direct"),
            pool.bulk_bodies(len(pool), 1000),
            1000,
            len(pool),
            4,
            run.es,
            run.pids,
            time_limit=warmup,
        )
    except ARM_ERRORS as error:
        say(f"  warm-up: {error}")
    say(f"ceiling sweep of direct _bulk: {grid}, {run.plan.sweep_seconds} s each")
    rows, best = [], None
    failed = []
    for size, concurrency in grid:
        try:
            result = await saturate(
                run.send("direct"),
                pool.bulk_bodies(len(pool), size),
                size,
                len(pool),
                concurrency,
                run.es,
                run.pids,
                time_limit=run.plan.sweep_seconds,
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
    run.data["sweep"] = rows
    run.appendix.append(
        "### Ceiling sweep (direct `_bulk`, one short arm each)\n\n"
        "| bulk size | concurrency | events/s | ES CPU-us/doc |\n|---|---|---|---|\n"
        + "\n".join(f"| {s} | {c} | {r:.0f} | {e:.0f} |" for s, c, r, e in rows)
        + f"\n\nCeiling C_R: {best['rate']:.0f} events/s at bulk size {best['size']}, "
        f"concurrency {best['concurrency']}; figures (a) use that configuration."
        + ("\n\nNot measured: " + "; ".join(failed) if failed else "")
    )
    return best


async def end_to_end(run: Run, pool: Pool, best: dict[str, Any]) -> None:
    size, concurrency = best["size"], best["concurrency"]
    # At least `min_arm_events`, so that a low estimate still gives a steady window.
    count = max(int(best["rate"] * run.plan.arm_seconds), run.plan.min_arm_events)
    count = min(count, len(pool))
    count -= count % size
    say(f"(a) {run.plan.pairs} ABBA pairs, {count} events, bulk {size} x {concurrency}")
    arms: dict[str, list[Throughput]] = {"direct": [], "hq": []}
    dropped = []
    for pair in range(run.plan.pairs):
        order = ("direct", "hq") if pair % 2 == 0 else ("hq", "direct")
        results: dict[str, Throughput] = {}
        for arm in order:
            bodies = (pool.bulk_bodies if arm == "direct" else pool.hq_bodies)(count, size)
            try:
                result = await saturate(
                    run.send(arm), bodies, size, count, concurrency, run.es, run.pids
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
    run.figures.append(
        Figure(
            "a",
            "HQ events/s / direct `_bulk` events/s",
            ratios,
            ">= 0.90",
            ">= 0.95",
            rejected=rejected,
        )
    )
    run.figures.append(
        Figure(
            "a'",
            "HQ CPU-s / ES CPU-s (HQ arm)",
            [h.cpu["hq"] / h.cpu["es"] for h in hq],
            "<= 0.10",
            "<= 0.05",
        )
    )
    run.figures.append(
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
    run.appendix.append(
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
    run.data["end_to_end"] = {
        "direct": [d.rate for d in direct],
        "hq": [h.rate for h in hq],
        "hq_cpu_us": [h.cpu_us_per_doc("hq") for h in hq],
    }
