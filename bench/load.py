"""The load generator: asyncio + uvloop + aiohttp, for both arms.

Arm R sends prebuilt NDJSON bodies straight to `_bulk` (`filter_path=errors`); arm S sends the
same events as JSON array bodies to HQ's `PUT /events`. Closed loop (`saturate`) measures
throughput as the events the loader saw acknowledged (HQ's 202, `_bulk`'s 200 without errors)
over a steady window, cross-checked with `_count` after a refresh once the arm is over; open
loop (`offer`) sends at a fixed rate and measures latency from each request's intended start,
so a slow server cannot hide its queue.

Why not the slope of `_count`: with a 1 s refresh interval `_count` moves in steps, and a short
arm saw no step inside its window (issue 13: "`_count` did not grow in the steady window").
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from hdrh.histogram import HdrHistogram

from .documents import SPACE, TOKEN
from .procs import cpu_seconds, run_queue_seconds

Send = Callable[[bytes], Awaitable[None]]


class LoadError(RuntimeError):
    """A request of the benchmark failed: the arm's figures would mean nothing."""


class Elasticsearch:
    """The few Elasticsearch calls a benchmark makes, on its own connection pool, on the
    indices of `pattern` (by default the event indices of the space `bench`)."""

    def __init__(self, url: str, prefix: str, pattern: str | None = None) -> None:
        self.url = url
        self.prefix = prefix
        self.pattern = pattern or f"{prefix}-{SPACE}-*"
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=300),
        )

    async def close(self) -> None:
        await self.session.close()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.session.request(method, self.url + path, **kwargs) as response:
            body = await response.read()
            if response.status >= 300 and not (method == "DELETE" and response.status == 404):
                raise LoadError(f"{method} {path}: {response.status} {body[:300]!r}")
            return orjson.loads(body) if body else None

    async def fresh_indices(self) -> None:
        """Delete the benchmark's event indices; the next writes create them from the template."""
        await self.call("DELETE", f"/{self.pattern}", params={"expand_wildcards": "all"})

    async def count(self) -> int:
        body = await self.call(
            "GET", f"/{self.pattern}/_count", params={"allow_no_indices": "true"}
        )
        return int(body["count"])

    async def refreshed_count(self) -> int:
        await self.call("POST", f"/{self.pattern}/_refresh", params={"allow_no_indices": "true"})
        return await self.count()

    async def node_stats(self) -> dict[str, float]:
        """Counters of the node that say what it was asked to do: requests per HTTP route,
        documents indexed, bulk shard operations, refreshes, flushes, merges."""
        body = await self.call(
            "GET",
            "/_nodes/_local/stats/indices,http",
            params={
                "filter_path": "nodes.*.indices.indexing.index_total,"
                "nodes.*.indices.indexing.index_time_in_millis,nodes.*.indices.bulk,"
                "nodes.*.indices.refresh.total,nodes.*.indices.refresh.external_total,"
                "nodes.*.indices.flush.total,nodes.*.indices.merges.total,"
                "nodes.*.indices.merges.total_time_in_millis,nodes.*.http.total_opened,"
                "nodes.*.http.routes.*.requests.count"
            },
        )
        (node,) = body["nodes"].values()
        indices = node.get("indices", {})
        stats: dict[str, float] = {
            "docs indexed": indices.get("indexing", {}).get("index_total", 0),
            "indexing ms": indices.get("indexing", {}).get("index_time_in_millis", 0),
            "bulk shard requests": indices.get("bulk", {}).get("total_operations", 0),
            "refreshes": indices.get("refresh", {}).get("total", 0),
            "flushes": indices.get("flush", {}).get("total", 0),
            "merges": indices.get("merges", {}).get("total", 0),
            "merge ms": indices.get("merges", {}).get("total_time_in_millis", 0),
            "connections opened": node.get("http", {}).get("total_opened", 0),
        }
        for route, value in node.get("http", {}).get("routes", {}).items():
            stats[f"{route}"] = value.get("requests", {}).get("count", 0)
        return stats

    async def version(self) -> str:
        body = await self.call("GET", "/_nodes/_local/jvm")
        (node,) = body["nodes"].values()
        heap = node["jvm"]["mem"]["heap_max_in_bytes"] / 2**30
        return f"{node['version']} (heap {heap:.1f} GiB, {node['jvm']['version']})"


def sender(session: aiohttp.ClientSession, arm: str, es_url: str, hq_url: str) -> Send:
    """How one arm sends one body; raises `LoadError` unless every event was stored."""
    if arm == "direct":
        url = es_url + "/_bulk?filter_path=errors"
        headers = {"content-type": "application/x-ndjson"}

        async def bulk(body: bytes) -> None:
            async with session.post(url, data=body, headers=headers) as response:
                answer = await response.read()
                if response.status != 200 or b'"errors":false' not in answer:
                    raise LoadError(f"_bulk answered {response.status}: {answer[:300]!r}")

        return bulk

    url = hq_url + "/events"
    headers = {"content-type": "application/json", "logspace.space-token": TOKEN}

    async def put(body: bytes) -> None:
        async with session.put(url, data=body, headers=headers) as response:
            answer = await response.read()
            if response.status != 202:
                raise LoadError(f"HQ answered {response.status}: {answer[:300]!r}")

    return put


@dataclass
class Sample:
    at: float
    count: int  # events acknowledged so far
    cpu: dict[str, float]


@dataclass
class Throughput:
    """One closed-loop arm: steady-state events/s from the loader's tally, and CPU per process."""

    events: int
    seconds: float
    rate: float
    cpu: dict[str, float]  # CPU-seconds per process over the steady window
    steady_docs: int
    samples: list[Sample] = field(repr=False, default_factory=list)

    def cpu_us_per_doc(self, name: str) -> float:
        return 1e6 * self.cpu[name] / max(self.steady_docs, 1)


async def saturate(
    send: Send,
    bodies: Sequence[bytes],
    size: int,
    events: int,
    concurrency: int,
    es: Elasticsearch,
    pids: dict[str, int | None],
    time_limit: float | None = None,
) -> Throughput:
    """Send `bodies` (body i holds `size` events, the last one the rest of `events`) with
    `concurrency` requests in flight. The rate is the events acknowledged over the window in
    which the 10th to the 90th percent of them were (with a time limit: over its last three
    quarters); `_count` after a refresh must then equal what was acknowledged."""
    await es.fresh_indices()
    queue = iter(enumerate(bodies))
    samples: list[Sample] = []
    acknowledged = 0
    started = time.monotonic()
    stop = asyncio.Event()

    async def worker() -> None:
        nonlocal acknowledged
        for i, body in queue:
            if stop.is_set():
                return
            await send(body)
            acknowledged += min(size, events - i * size)

    async def sample() -> None:
        while True:
            cpu = {n: cpu_seconds(p) for n, p in pids.items()}
            samples.append(Sample(time.monotonic(), acknowledged, cpu))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        if time_limit is not None:
            await asyncio.wait(workers, timeout=time_limit)
            stop.set()
        await asyncio.gather(*workers)
    finally:
        for task in [*workers, sampler]:
            task.cancel()
        await asyncio.gather(*workers, sampler, return_exceptions=True)
    elapsed = time.monotonic() - started
    samples.append(
        Sample(time.monotonic(), acknowledged, {n: cpu_seconds(p) for n, p in pids.items()})
    )
    stored = await es.refreshed_count()
    if stored != acknowledged:
        raise LoadError(f"_count is {stored} after {acknowledged} acknowledged events")
    if time_limit is None:
        low, high = 0.1 * acknowledged, 0.9 * acknowledged
        window = [s for s in samples if low <= s.count <= high]
    else:
        window = [s for s in samples if 0.25 <= (s.at - started) / time_limit <= 1.0]
    if len(window) < 3 or window[-1].count <= window[0].count:
        raise LoadError(
            f"the arm was too short for a steady window ({len(window)} samples, "
            f"{elapsed:.1f} s, {acknowledged} events): make arms longer"
        )
    first, last = window[0], window[-1]
    return Throughput(
        events=stored,
        seconds=elapsed,
        rate=(last.count - first.count) / (last.at - first.at),
        cpu={name: last.cpu[name] - first.cpu[name] for name in pids},
        steady_docs=last.count - first.count,
        samples=samples,
    )


@dataclass
class Latency:
    """One open-loop arm: latency percentiles (ms) from intended start, and CPU-s per process."""

    p50: float
    p90: float
    p99: float
    p999: float
    max: float
    requests: int
    events: int
    late_starts: int
    refused: int  # requests answered with an error (HQ's 503 OVERLOADED, ES's 429)
    cpu: dict[str, float]
    waited: dict[str, float]  # seconds each process waited on a run queue for a CPU
    failures: list[str]  # the first few refusals, as answered
    histogram: HdrHistogram = field(repr=False)
    elapsed: float = 0.0  # seconds from the first intended start to the last answer
    last_start: float = 0.0  # seconds from the first intended start to the last

    @property
    def drain(self) -> float:
        """Seconds from the last intended start to the last answer. Below capacity, about one
        request's latency; above it, the backlog the arm built, which grows with its length."""
        return self.elapsed - self.last_start

    @property
    def busy(self) -> float:
        """The share of the machine's CPUs that Elasticsearch, HQ and the loader kept busy."""
        return sum(self.cpu.values()) / max(self.elapsed * (os.cpu_count() or 1), 1e-9)


async def offer(
    send: Send,
    bodies: Sequence[bytes],
    events_per_body: int,
    rate: float,
    seconds: float,
    es: Elasticsearch,
    pids: dict[str, int | None],
    warmup: float = 2.0,
) -> Latency:
    """Start request k at t0 + k / (rate / events_per_body), whatever happened to the others."""
    await es.fresh_indices()
    interval = events_per_body / rate
    total = min(len(bodies), int(seconds / interval))
    histogram = HdrHistogram(1, 600_000_000, 3)  # microseconds
    loop = asyncio.get_running_loop()
    late = 0
    cpu_before = {n: cpu_seconds(p) for n, p in pids.items()}
    waited_before = {n: run_queue_seconds(p) for n, p in pids.items()}
    failures: list[str] = []

    refused = 0

    async def one(body: bytes, intended: float, record: bool) -> None:
        nonlocal refused
        try:
            await send(body)
        except LoadError as error:
            # An overloaded server may refuse (HQ: 503 OVERLOADED); counted, not timed.
            refused += 1
            if len(failures) < 3:
                failures.append(str(error)[:300])
            return
        if record:
            histogram.record_value(max(1, int((loop.time() - intended) * 1e6)))

    t0 = loop.time() + 0.05
    tasks = []
    for k in range(total):
        intended = t0 + k * interval
        delay = intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            late += 1
        tasks.append(asyncio.create_task(one(bodies[k], intended, k * interval >= warmup)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - t0
    cpu = {n: cpu_seconds(p) - cpu_before[n] for n, p in pids.items()}
    waited = {n: run_queue_seconds(p) - waited_before[n] for n, p in pids.items()}
    stored = await es.refreshed_count()
    if stored != (total - refused) * events_per_body:
        raise LoadError(f"_count is {stored} after {total - refused} accepted requests")

    def ms(q: float) -> float:
        return float(histogram.get_value_at_percentile(q)) / 1000

    return Latency(
        p50=ms(50),
        p90=ms(90),
        p99=ms(99),
        p999=ms(99.9),
        max=histogram.get_max_value() / 1000,
        requests=total,
        events=(total - refused) * events_per_body,
        late_starts=late,
        refused=refused,
        cpu=cpu,
        waited=waited,
        failures=failures,
        histogram=histogram,
        elapsed=elapsed,
        last_start=(total - 1) * interval,
    )
