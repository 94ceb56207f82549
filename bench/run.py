"""The state one `make bench` run shares between its figures: the plan, Elasticsearch, HQ,
the loader's HTTP session, and what the report gets (figures, appendix, data, parts)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from .load import Elasticsearch, LoadError, sender
from .plan import Part, Plan, parts
from .procs import DedicatedNode, HQProcess
from .report import Figure

PREFIX = "lsbench"
HERE = Path(__file__).resolve().parent

# What an arm that could not be measured raises: the figure says so, the run goes on.
ARM_ERRORS = (LoadError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


class Run:
    def __init__(self, plan: Plan, node: DedicatedNode, es_url: str) -> None:
        self.plan = plan
        self.node = node
        self.es_url = es_url
        self.es = Elasticsearch(es_url, PREFIX)
        self.figures: list[Figure] = []
        self.appendix: list[str] = []
        # (f) and (g) are parts of their own in bench/results.md (see report.write_part).
        self.parts: dict[str, Part] = parts()
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
