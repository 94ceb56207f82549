"""Figure (g)'s driver: its arms (bench/overhead.py) against the run's HQ, then its figures
and appendix (bench/overheadfigures.py), kept apart for their own part of results.md."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import overhead, overheadfigures, overheadrounds
from .report import Figure
from .wrk import ensure_wrk

# The figures (g) holds to a target, reported as not measured when (g) fails.
GATED = [
    ("g1", "ASGI app (uvicorn): requests/s with the agent / without", ">= 0.75"),
    ("g2", "WSGI app (gunicorn): requests/s with the agent / without", ">= 0.75"),
    ("g3", "p99 latency added by the agent, ASGI app (uvicorn), light paced load", "<= 1"),
    ("g4", "log records/s through `LogHandler` / through a `FileHandler`", ">= 0.5"),
]


@dataclass(frozen=True)
class OverheadPlan:
    """wrk arms as in issue 18 (16 connections, 10 s); log records per (g4) arm."""

    seconds: float
    light_seconds: float
    connections: int
    records: int


class OverheadBench:
    def __init__(
        self,
        plan: OverheadPlan,
        pairs: int,
        hq: tuple[str, int],  # HQ's URL and PID
        es: tuple[str, int | None],  # Elasticsearch's URL and PID
        prefix: str,
        say: Callable[[str], None],
    ) -> None:
        self.plan = plan
        self.pairs = pairs
        self.hq_url, self.hq_pid = hq
        self.es_url, self.es_pid = es
        self.prefix = prefix
        self.say = say
        self.figures: list[Figure] = []
        self.appendix: list[str] = []
        self.data: dict[str, Any] = {}

    async def run(self) -> None:
        """What the agents cost an application (issue 18): requests/s and p99 with and
        without the request agent, log records/s through LogHandler and a FileHandler."""
        wrk = ensure_wrk(self.say)
        plan = self.plan
        with overhead.workspace() as work:
            stub = await asyncio.to_thread(overhead.StubHQ, work / "stub.log")
            try:
                ctx = overhead.Context(
                    wrk=wrk,
                    hq_url=self.hq_url,
                    stub_url=stub.url,
                    es_url=self.es_url,
                    prefix=self.prefix,
                    pids={"es": self.es_pid, "hq": self.hq_pid, "stub": stub.pid},
                    work=work,
                    say=self.say,
                )
                measured = await asyncio.to_thread(
                    overheadrounds.measure,
                    ctx,
                    self.pairs,
                    plan.seconds,
                    plan.light_seconds,
                    plan.connections,
                    plan.records,
                )
            finally:
                await asyncio.to_thread(stub.stop)
        self.data["overhead"] = measured.as_json()
        self.figures.extend(overheadfigures.figures(measured))
        self.appendix.extend(
            overheadfigures.appendix(
                measured, plan.seconds, plan.light_seconds, plan.connections, plan.records
            )
        )
