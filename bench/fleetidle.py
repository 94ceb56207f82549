"""Figure (f5): what idle keep-alive connections cost HQ (RSS growth of a fresh HQ)."""

from __future__ import annotations

import asyncio

from . import openloop
from .fleetrun import FleetRun, figure, put_events, rss_kib
from .load import LoadError
from .procs import open_fds


async def idle(run: FleetRun) -> None:
    n = run.plan.idle_connections
    run.say(f"(f5) RSS of a fresh HQ for {n} idle keep-alive connections")
    growth, rows, why = [], [], ""
    for repeat in range(run.plan.idle_repeats):
        try:
            row, mib = await idle_once(run, n)
        except (LoadError, OSError, RuntimeError) as error:
            why = str(error)
            run.say(f"  not measured: {error}")
            continue
        growth.append(mib)
        rows.append(f"| {repeat + 1} | {row}")
    run.figures.append(figure("f5", growth, why, n=n))
    run.appendix.append(
        f"### (f5) {n} idle keep-alive connections\n\n"
        "A fresh HQ, warmed up by 200 requests on 8 connections (closed again), then "
        f"{n} connections each sending one `GET /health/live` and staying open. Growth = "
        "RSS (HQ and its children) 1 s after the last answer - RSS before. HQ runs "
        "uvicorn, which closes a keep-alive connection idle for 5 s (`timeout_keep_alive`): "
        "the last column counts the connections still open 6 s later.\n\n"
        "| repeat | RSS before MiB | RSS after MiB | growth MiB | KiB per connection | "
        "HQ open fds | open after 6 s |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )


async def idle_once(run: FleetRun, n: int) -> tuple[str, float]:
    hq = await asyncio.to_thread(run.start_hq)
    try:
        host, port = hq.url.removeprefix("http://").split(":")
        warm = openloop.Client(host, int(port))
        await warm.open(8)
        batches = list(run.fleet.batches(200, generator=0x200))
        for start in range(0, 200, 8):
            answers = await asyncio.gather(
                *(
                    c.exchange(put_events(host, port, b))
                    for c, b in zip(warm.connections, batches[start : start + 8], strict=True)
                )
            )
            if any(a.status != 202 for a in answers):
                raise LoadError(f"warm-up answered {[a.status for a in answers]}")
        await warm.close()
        await asyncio.sleep(1.0)
        before = rss_kib(hq.pid)
        client = openloop.Client(host, int(port))
        try:
            await client.open(n)
            live = openloop.request_bytes("GET", f"{host}:{port}", "/health/live", {})
            answers = await client.each(live)
            if any(a.status != 200 for a in answers):
                bad = sum(a.status != 200 for a in answers)
                raise LoadError(f"{bad} of {n} connections got no 200 from /health/live")
            await asyncio.sleep(1.0)
            after = rss_kib(hq.pid)
            fds = open_fds(hq.pid)
            await asyncio.sleep(6.0)
            still = client.still_open()
        finally:
            await client.close()
    finally:
        await asyncio.to_thread(hq.stop)
    mib = (after - before) / 1024
    run.say(f"  RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB, {still} of {n} open after 6 s")
    row = (
        f"{before / 1024:.1f} | {after / 1024:.1f} | {mib:.1f} | {(after - before) / n:.1f} | "
        f"{fds} | {still} |"
    )
    return row, mib
