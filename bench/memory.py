"""(d) Memory per in-flight request: K requests held in HQ by a deliberately slow Elasticsearch.

A TCP proxy in front of the node holds back every response until a release time, so HQ keeps
all K requests in flight (read, validated, encoded, waiting on `_bulk`) at once. HQ's peak
RSS over that time, less its RSS before, divided by K x body bytes, is the figure.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from .documents import Pool
from .load import sender
from .procs import HQProcess, memory_kib
from .report import Figure
from .run import HERE, PREFIX, Run, say


class SlowProxy:
    """Forwards to Elasticsearch; responses wait until `release_at` (a `time.monotonic()`)."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.release_at = 0.0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, held: bool
        ) -> None:
            try:
                while data := await source.read(1 << 16):
                    if held and (wait := self.release_at - time.monotonic()) > 0:
                        await asyncio.sleep(wait)
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))


@dataclass
class Held:
    k: int
    body_bytes: int
    rss_before_kib: int
    peak_kib: int  # the highest of VmHWM and sampled VmRSS while the requests were held
    idle_kib: int  # VmRSS of the fresh worker before its first request

    @property
    def per_request(self) -> float:
        """(peak - before) / (K x body bytes)."""
        return (self.peak_kib - self.rss_before_kib) * 1024 / (self.k * self.body_bytes)


async def hold(
    k: int, pool: Pool, events_per_body: int, es_url: str, prefix: str, log: Path, hold_s: float
) -> Held:
    """A fresh HQ behind a slow proxy; one warm-up request, then K at once."""
    proxy = SlowProxy(es_url)
    proxy_url = await proxy.start()
    hq = await asyncio.to_thread(HQProcess, proxy_url, prefix, log)
    try:
        idle = memory_kib(hq.pid)["VmRSS"]
        bodies = pool.hq_bodies(len(pool), events_per_body)[: k + 1]
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=300)
        ) as session:
            put = sender(session, "hq", es_url, hq.url)
            await put(
                bodies[0]
            )  # first-use allocations (code paths, connections) are not per request
            await asyncio.sleep(0.5)
            before = memory_kib(hq.pid)
            proxy.release_at = time.monotonic() + hold_s
            requests = asyncio.gather(*(put(body) for body in bodies[1 : k + 1]))
            peak = before["VmRSS"]
            while time.monotonic() < proxy.release_at:
                peak = max(peak, memory_kib(hq.pid)["VmRSS"])
                await asyncio.sleep(0.02)
            await requests
            peak = max(peak, memory_kib(hq.pid)["VmHWM"])
        return Held(
            k=k,
            body_bytes=sum(map(len, bodies[1 : k + 1])) // k,
            rss_before_kib=before["VmRSS"],
            peak_kib=peak,
            idle_kib=idle,
        )
    finally:
        await asyncio.to_thread(hq.stop)
        await proxy.stop()


async def figure(run: Run) -> None:
    ks = [int(k) for k in run.plan.memory_k.split(",")]
    say(f"(d) memory, K = {ks}, {run.plan.memory_repeats} repeats, fresh HQ each")
    pool = Pool.generate((max(ks) + 1) * run.plan.memory_body_events, PREFIX, seed=3)
    log = HERE / "hq-memory.log"
    log.unlink(missing_ok=True)
    results: dict[int, list[Held]] = {k: [] for k in ks}
    for _ in range(run.plan.memory_repeats):
        for k in ks:
            held = await hold(
                k,
                pool,
                run.plan.memory_body_events,
                run.es_url,
                PREFIX,
                log,
                run.plan.memory_hold_seconds + 0.02 * k,
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
    run.figures.append(
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
    run.figures.append(Figure("d'", "idle RSS per worker", idle, "<= 80", "<= 50", unit="MiB"))
    run.appendix.append(
        "### (d) Memory, K requests held by a proxy that delays Elasticsearch's answers\n\n"
        "A fresh HQ per measurement, one warm-up request, then K at once. Figure: "
        "(peak RSS - RSS before) / (K x body bytes); peak is the higher of VmHWM and "
        "VmRSS sampled every 20 ms.\n\n"
        "| K | body bytes | median x body | worst | RSS before MiB | peak MiB |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
