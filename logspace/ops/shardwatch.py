"""The shard watch: every minute, how many shards the cluster holds against its limit.

Past `LOGSPACE_SHARDS_WARN_PERCENT` of the limit HQ logs a warning (when it starts, and when
the share crosses the mark), says so in `GET /health/ready` (which stays ready: HQ can still
store events) and shows both numbers in its metrics. A check that fails (no `monitor`
privilege, Elasticsearch unreachable) is logged once and leaves the last figures in place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from logspace.elastic.shards import ShardUse
from logspace.errors import StoreUnavailable
from logspace.ops.metrics import Metrics

__all__ = ["CHECK_SECONDS", "ShardWatch"]

log = logging.getLogger(__name__)

# Indices come and go with months and retention: a minute is prompt enough, and cheap.
CHECK_SECONDS: Final = 60.0


class ShardWatch:
    def __init__(
        self, read: Callable[[], Awaitable[ShardUse]], percent: int, metrics: Metrics
    ) -> None:
        self._read = read
        self.percent = percent
        self._metrics = metrics
        self.last: ShardUse | None = None
        self.warning: str | None = None
        self._failing = False

    async def check(self) -> ShardUse | None:
        """Read the figures now; None if they could not be read."""
        try:
            use = await self._read()
        except StoreUnavailable as error:
            if not self._failing:
                log.warning("could not check the cluster's shards: %s", error.message)
            self._failing = True
            return None
        self._failing = False
        self.last = use
        self._metrics.cluster_shards.set(use.shards)
        self._metrics.cluster_shard_limit.set(use.limit)
        warning = use.warning(self.percent)
        if warning and not self.warning:
            log.warning("shards: %s", warning)
        elif self.warning and not warning:
            log.info(
                "shards: the cluster holds %d of %d shards, below %d %% again",
                use.shards,
                use.limit,
                self.percent,
            )
        self.warning = warning
        return use

    async def run(self, interval: float = CHECK_SECONDS) -> None:
        """Check now and every `interval` seconds, until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(interval)
