"""What the runs of figure (f) share: the plan, the fleet's events, Elasticsearch, HQ, and
what the report gets (figures, appendix, data)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import openloop
from .fleetevents import Batch, Fleet
from .load import Elasticsearch, LoadError
from .procs import HQProcess, descendants, memory_kib
from .report import Figure

HERE = Path(__file__).resolve().parent
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


class FleetRun:
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

    def start_hq(self) -> HQProcess:
        log = HERE / "hq-fleet.log"
        return HQProcess(
            self.es_url, self.prefix, log, LOGSPACE_SPACE_TOKENS=self.fleet.tokens_setting()
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

    async def settled_count(self) -> int:
        """`_count` once requests still in flight when the generator stopped have landed."""
        last = -1
        for _ in range(20):
            count = await self.es.refreshed_count()
            if count == last:
                return count
            last = count
            await asyncio.sleep(0.5)
        return last


def rss_kib(pid: int) -> int:
    return sum(memory_kib(p).get("VmRSS", 0) for p in [pid, *descendants(pid)])


def port(url: str) -> int:
    return int(url.rstrip("/").rpartition(":")[2])


def put_events(host: str, port: str, batch: Batch) -> bytes:
    """The raw `PUT /events` request of an agent's batch, with its space's token."""
    return openloop.request_bytes(
        "PUT",
        f"{host}:{port}",
        "/events",
        {"Content-Type": "application/json", "logspace.space-token": Fleet.token(batch.space)},
        batch.hq_body(),
    )
