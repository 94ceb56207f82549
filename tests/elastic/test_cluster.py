"""HQ on a real cluster of three nodes (`es_cluster`) while nodes die and restart, and agents
failing over between two HQs: every event that got a 202 is in Elasticsearch exactly once,
and HQ answers only 202 or a retryable 503 meanwhile, never 500 or 400.

Each test prints what it measured (the longest refusal window above all), so a CI log shows
the figures docs/operations.md quotes.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from logspace.agent import AgentConfig, Sender
from logspace.app import create_app
from logspace.settings import Settings
from logspace.spaces.grants import Grant
from logspace.testing import make_event

from ..clusters import Cluster
from ..senders import (
    SPACE,
    TOKEN,
    Senders,
    Watchers,
    count_by_id,
    new_prefix,
    remove_prefix,
    serving,
)

# Answers HQ may give while a node is lost: stored, or "send it again later".
RETRYABLE = {"202", "503 STORE_UNAVAILABLE", "503 OVERLOADED"}
READS = {"200", "503 STORE_UNAVAILABLE"}


@pytest.fixture
def cluster_prefix(es_cluster: Cluster) -> Iterator[str]:
    prefix = new_prefix()
    yield prefix
    remove_prefix(es_cluster.live_url(), prefix)


def wait_for(what: str, check: Any, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.2)


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n{text}")


def assert_exactly_once(cluster: Cluster, prefix: str, load: Senders) -> None:
    acknowledged = load.acknowledged()
    tally = count_by_id(cluster.live_url(), prefix, acknowledged)
    assert tally.missing == []
    assert tally.repeated == {}
    # Every batch ended with its 202, so nothing else is stored either.
    assert len(acknowledged) == len(set(load.sent()))
    assert tally.documents == len(acknowledged)


def test_killing_the_node_with_the_primary_loses_nothing_acknowledged(
    es_cluster: Cluster, cluster_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Four senders; kill -9 of the node holding the primary of the index being written; the
    senders move on to a new month (a new index, created while the node is down); the node
    comes back. Readers and readiness probes run all the while."""
    index = f"{cluster_prefix}-{SPACE}-2025.06"
    timings: dict[str, float] = {}
    with serving(es_cluster.urls, cluster_prefix) as hq, Watchers(hq.url) as watch:
        with Senders(hq.url, month="2025-06") as load:
            wait_for("writes", lambda: len(load.acknowledged()) >= 500)
            es_cluster.health(index=index, wait_for_status="green")
            victim = es_cluster.primary_of(index)
            master = _master(es_cluster)
            killed = time.monotonic()
            es_cluster.kill(victim)
            load.month = "2025-07"
            time.sleep(6)
            started = time.monotonic()
            es_cluster.start(victim)
            es_cluster.health(wait_for_nodes="3", wait_for_status="green", timeout="240s")
            timings = {"down": started - killed, "back": time.monotonic() - started}
            time.sleep(3)
        survivor = es_cluster.primary_of(index)
        july = _documents(es_cluster, f"{cluster_prefix}-{SPACE}-2025.07")
        assert hq.process.poll() is None

    statuses = load.statuses()
    report(
        capsys,
        f"kill -9 {victim} (primary of {index}; {master} was the elected master); the next "
        f"month's index made while it was down holds {july} events; "
        f"{len(load.acknowledged())} events in "
        f"{len(load.batches)} batches; answers {dict(statuses)}; longest refusal window "
        f"{load.longest_refusal():.2f} s; slowest 202 {load.slowest_202():.2f} s; node down "
        f"{timings['down']:.0f} s, back to green in {timings['back']:.0f} s; reads "
        f"{dict(watch.reads)}; readiness {dict(watch.ready)}",
    )
    assert set(statuses) <= RETRYABLE
    assert set(watch.reads) <= READS
    assert survivor != victim
    assert july > 0
    assert_exactly_once(es_cluster, cluster_prefix, load)


def test_a_rolling_restart_loses_nothing_acknowledged(
    es_cluster: Cluster, cluster_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each node in turn stopped (SIGTERM, as an operator would), started again, and the
    cluster green before the next, under the same load."""
    index = f"{cluster_prefix}-{SPACE}-2025.06"
    steps = []
    with serving(es_cluster.urls, cluster_prefix) as hq, Watchers(hq.url) as watch:
        with Senders(hq.url, month="2025-06") as load:
            wait_for("writes", lambda: len(load.acknowledged()) >= 500)
            es_cluster.health(index=index, wait_for_status="green")
            for name in sorted(es_cluster.nodes):
                began = time.monotonic()
                es_cluster.stop(name)
                time.sleep(3)
                es_cluster.start(name)
                # Green before the next node goes, as an operator waits: else its copies may
                # be the only ones in sync. After the last, joining is enough.
                last = name == max(es_cluster.nodes)
                es_cluster.health(
                    wait_for_nodes="3",
                    wait_for_status="yellow" if last else "green",
                    timeout="240s",
                )
                steps.append(f"{name} {time.monotonic() - began:.0f} s")
        assert hq.process.poll() is None

    statuses = load.statuses()
    report(
        capsys,
        f"rolling restart ({', '.join(steps)}): {len(load.acknowledged())} events in "
        f"{len(load.batches)} batches; answers {dict(statuses)}; longest refusal window "
        f"{load.longest_refusal():.2f} s; slowest 202 {load.slowest_202():.2f} s; reads "
        f"{dict(watch.reads)}; readiness {dict(watch.ready)}",
    )
    assert set(statuses) <= RETRYABLE
    assert set(watch.reads) <= READS
    assert_exactly_once(es_cluster, cluster_prefix, load)


def test_an_agent_carries_on_with_the_other_hq_when_one_is_killed(
    es_cluster: Cluster, cluster_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two `logspace serve`; the agent library sends to both (the first while it lives);
    kill -9 of the first mid-stream: every event arrives, once, through the second."""
    total = 3000
    with (
        serving(es_cluster.urls, cluster_prefix) as first,
        serving(es_cluster.urls, cluster_prefix) as second,
    ):
        config = AgentConfig(
            token=TOKEN,
            hq_url=[first.url, second.url],
            queue_dir=tmp_path,
            batch_max_age=0.05,
            batch_max_events=100,
            backoff_initial=0.1,
            backoff_max=1.0,
            shutdown_timeout=60.0,
        )
        ids = []
        with Sender(config) as sender:
            for number in range(total):
                event = make_event(timestamp="2025-06-15T12:00:00.000Z")
                ids.append(event["id"])
                sender.send(event)
                if number == total // 3:
                    wait_for("deliveries", lambda: sender.stats.sent >= total // 4, 60)
                    first.process.send_signal(signal.SIGKILL)
                time.sleep(0.002)
            delivered = sender.flush(60)
            stats = sender.stats
        through_second = _accepted(second.url)

    tally = count_by_id(es_cluster.live_url(), cluster_prefix, ids)
    report(
        capsys,
        f"two HQs, the first killed after {total // 3} of {total} events: sent {stats.sent}, "
        f"dropped {stats.dropped}, queued {stats.queued}; the second HQ accepted "
        f"{through_second:.0f} requests",
    )
    assert delivered
    assert (stats.sent, stats.dropped, stats.queued) == (total, 0, 0)
    assert tally.missing == []
    assert tally.repeated == {}
    assert tally.documents == total
    assert through_second > 0


def _indices_and_shards(url: str, prefix: str) -> tuple[int, int]:
    rows = httpx.get(
        f"{url}/_cat/shards/{prefix}-*", params={"format": "json", "h": "index,prirep"}, timeout=60
    ).json()
    return len({row["index"] for row in rows}), len(rows)


def _documents(cluster: Cluster, index: str) -> int:
    url = cluster.live_url()
    httpx.post(f"{url}/{index}/_refresh", timeout=60).raise_for_status()
    return int(httpx.get(f"{url}/{index}/_count", timeout=60).json()["count"])


def _master(cluster: Cluster) -> str:
    answer = httpx.get(f"{cluster.live_url()}/_cat/master", params={"h": "node"}, timeout=60)
    return answer.text.strip()


def _accepted(hq_url: str) -> float:
    """Requests to PUT /events this HQ answered 202, from its metrics."""
    text = httpx.get(f"{hq_url}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("logspace_requests_total{") and 'outcome="accepted"' in line
    )


@pytest.mark.anyio
async def test_the_shard_warning_on_a_cluster_near_its_limit(
    es_cluster: Cluster, cluster_prefix: str
) -> None:
    """With `cluster.max_shards_per_node` set low, HQ warns in its readiness answer, which
    stays 200, and a new index past the limit gets 503 (not 422, which agents drop)."""
    settings = Settings(
        space_tokens={TOKEN: Grant(SPACE)},
        es_url=",".join(es_cluster.urls),
        index_prefix=cluster_prefix,
        control_index=f"{cluster_prefix}.control",
        shards_warn_percent=50,
        es_retry_seconds=1.0,
    )
    url = es_cluster.live_url()
    app = create_app(settings)
    headers = {"logspace.space-token": TOKEN}

    def limit(per_node: int | None) -> None:
        body = {"persistent": {"cluster.max_shards_per_node": per_node}}
        httpx.put(f"{url}/_cluster/settings", json=body, timeout=60).raise_for_status()

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hq") as hq,
    ):
        first = await hq.put("/events", json=[make_event()], headers=headers)
        shards = int(es_cluster.health()["active_shards"])
        limit(max(1, shards // 3))  # 3 data nodes: the cluster is at its limit now
        try:
            use = await app.state.hq.shards.check()
            ready = await hq.get("/health/ready")
            past = await hq.put(
                "/events",
                json=[make_event(timestamp="2024-01-01T00:00:00.000Z")],
                headers=headers,
            )
        finally:
            limit(None)

    assert first.status_code == 202
    assert use is not None
    assert (use.per_node, use.data_nodes) == (max(1, shards // 3), 3)
    assert ready.status_code == 200
    assert ready.json()["warnings"]["shards"].startswith("the cluster holds")
    assert (past.status_code, past.json()["type"]) == (503, "STORE_UNAVAILABLE")
    assert "maximum normal shards open" in past.json()["parameters"]["reason"]


PARTITION_PERIODS = {"month": 12, "quarter": 4, "year": 1}


@pytest.mark.anyio
async def test_the_shards_a_fleet_makes_in_a_year_by_partition(
    es_cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Spaces x periods x (1 primary + 1 replica): measured from the indices HQ really makes
    for two spaces writing in every month of a year, under each partition."""
    spaces = ["alpha", "beta"]
    tokens = {f"{space}-token": Grant(space) for space in spaces}
    url = es_cluster.live_url()
    measured = {}
    for partition in PARTITION_PERIODS:
        prefix = new_prefix()
        settings = Settings(
            space_tokens=tokens,
            es_url=",".join(es_cluster.urls),
            index_prefix=prefix,
            index_partition=partition,  # type: ignore[arg-type]
            control_index=f"{prefix}.control",
        )
        app = create_app(settings)
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://hq") as hq:
                    for space in spaces:
                        year = [
                            make_event(timestamp=f"2025-{month:02}-10T00:00:00.000Z")
                            for month in range(1, 13)
                        ]
                        answer = await hq.put(
                            "/events", json=year, headers={"logspace.space-token": f"{space}-token"}
                        )
                        assert answer.status_code == 202, answer.text
            es_cluster.health(index=f"{prefix}-*", wait_for_status="green")
            measured[partition] = _indices_and_shards(url, prefix)
        finally:
            remove_prefix(url, prefix)

    report(
        capsys,
        "shards of 2 spaces writing in every month of 2025, 1 replica: "
        + ", ".join(f"{p} {i} indices, {s} shards" for p, (i, s) in measured.items()),
    )
    assert measured == {
        partition: (len(spaces) * periods, len(spaces) * periods * 2)
        for partition, periods in PARTITION_PERIODS.items()
    }
