"""The shard watch: the cluster's shards against its limit, a warning past the mark (log,
metrics, readiness detail) that never makes HQ unready."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from logspace.elastic.shards import ShardUse, max_shards_per_node
from logspace.errors import StoreUnavailable
from logspace.ops.metrics import Metrics
from logspace.ops.shardwatch import ShardWatch

from .test_metrics import scrape

pytestmark = pytest.mark.anyio


def test_the_limit_is_the_per_node_setting_times_the_data_nodes() -> None:
    use = ShardUse(shards=2400, per_node=1000, data_nodes=3)

    assert (use.limit, round(use.percent)) == (3000, 80)
    assert use.warning(81) is None
    warning = use.warning(80)
    assert warning is not None
    assert warning.startswith("the cluster holds 2400 shards, 80 % of the 3000 its 3 data node(s)")
    assert "cluster.max_shards_per_node = 1000" in warning


@pytest.mark.parametrize(
    ("body", "limit"),
    [
        ({"defaults": {"cluster": {"max_shards_per_node": "1000"}}}, 1000),
        (
            {
                "persistent": {"cluster": {"max_shards_per_node": "300"}},
                "defaults": {"cluster": {"max_shards_per_node": "1000"}},
            },
            300,
        ),
        (
            {
                "transient": {"cluster": {"max_shards_per_node": "50"}},
                "persistent": {"cluster": {"max_shards_per_node": "300"}},
            },
            50,
        ),
        ({}, 1000),
    ],
)
def test_the_setting_in_force_is_transient_then_persistent_then_the_default(
    body: dict[str, Any], limit: int
) -> None:
    assert max_shards_per_node(body) == limit


class Readings:
    """Scripted figures for the watch: a `ShardUse`, or an error to raise."""

    def __init__(self, *readings: ShardUse | Exception) -> None:
        self.readings = list(readings)

    async def __call__(self) -> ShardUse:
        reading = self.readings.pop(0)
        if isinstance(reading, Exception):
            raise reading
        return reading


async def test_the_watch_warns_once_on_crossing_and_says_when_it_is_below_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    below, above = ShardUse(100, 1000, 1), ShardUse(900, 1000, 1)
    failed = StoreUnavailable("Could not read the cluster's shard count.", {})
    watch = ShardWatch(Readings(below, above, above, failed, failed, below), 80, Metrics())

    caplog.set_level(logging.INFO, logger="logspace.ops.shardwatch")
    warnings = []
    for _ in range(6):
        await watch.check()
        warnings.append(watch.warning is not None)

    assert warnings == [False, True, True, True, True, False]
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert messages[0].startswith("shards: the cluster holds 900 shards, 90 % of the 1000")
    assert messages[1] == (
        "could not check the cluster's shards: Could not read the cluster's shard count."
    )
    assert messages[2] == "shards: the cluster holds 100 of 1000 shards, below 80 % again"


async def test_hq_reads_the_figures_of_the_node_and_shows_them_in_its_metrics(
    make_hq: Any,
) -> None:
    """On the test node (one data node, the default limit): no warning, and the figures in
    the metrics. The warning on a real cluster: tests/elastic/test_cluster.py."""
    async with make_hq(shards_warn_percent=100) as hq:
        use = await hq.app.state.hq.shards.check()
        ready = await hq.get("/health/ready")
        metrics = await scrape(hq)

    assert use is not None
    assert (use.per_node, use.data_nodes) == (1000, 1)
    assert ready.json() == {"status": "ready"}
    assert metrics.value("logspace_elasticsearch_shard_limit") == 1000
    assert metrics.value("logspace_elasticsearch_shards") == use.shards
