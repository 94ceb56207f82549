"""Retention: whole monthly indices older than the window go, nothing else; on the real node."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import pytest

from logspace.ops.retention import apply, batches, parse_index, plan
from logspace.testing import make_event
from logspace.textvalues import parse_keep

NOW = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


# -- deciding (pure) ---------------------------------------------------------------


def rows(*names: str) -> list[dict[str, Any]]:
    return [{"index": name, "docs.count": "1", "store.size": "100"} for name in names]


def test_keep_windows_are_days() -> None:
    assert parse_keep("90d") == 90
    assert parse_keep(" 1d ") == 1
    for bad in ("90", "0d", "3m", "-1d", "1.5d", "d", ""):
        with pytest.raises(ValueError, match="is not a retention window such as 90d"):
            parse_keep(bad)


def test_a_month_goes_only_once_all_of_it_is_older_than_the_window() -> None:
    """90 days before 2026-11-26 10:30 is 2026-08-28 10:30: August is partly inside, so it
    stays; July ended before, so it goes."""
    result = plan(rows("p-a-2026.06", "p-a-2026.07", "p-a-2026.08", "p-a-2026.11"), "p", 90, NOW)

    assert [i.name for i in result.expired] == ["p-a-2026.06", "p-a-2026.07"]
    assert [i.name for i in result.kept] == ["p-a-2026.08", "p-a-2026.11"]
    assert result.cutoff == datetime(2026, 8, 28, 10, 30, tzinfo=UTC)


def test_a_month_that_ends_exactly_at_the_cutoff_goes() -> None:
    now = datetime(2026, 9, 1, tzinfo=UTC)

    result = plan(rows("p-a-2026.07", "p-a-2026.08"), "p", 1, now)

    assert [i.name for i in result.expired] == ["p-a-2026.07"]
    assert [i.name for i in result.kept] == ["p-a-2026.08"]


def test_december_ends_with_the_year() -> None:
    result = plan(rows("p-a-2025.12"), "p", 1, datetime(2026, 1, 2, tzinfo=UTC))

    assert [i.name for i in result.expired] == ["p-a-2025.12"]


def test_quarters_and_years_go_whole_once_they_have_ended_before_the_window() -> None:
    """On 2026-11-26 with 90 days the cutoff is 2026-08-28: the second quarter ended before
    it, the third did not; 2025 ended before it, 2026 did not. A deployment that changed its
    partition has indices of several forms: each is read as its own."""
    names = ("p-a-2026.q2", "p-a-2026.q3", "p-a-2025", "p-a-2026", "p-a-2026.07", "p-a-2026.09")

    result = plan(rows(*names), "p", 90, NOW)

    assert [i.name for i in result.expired] == ["p-a-2025", "p-a-2026.07", "p-a-2026.q2"]
    assert [i.name for i in result.kept] == ["p-a-2026", "p-a-2026.09", "p-a-2026.q3"]


def test_only_event_indices_of_the_prefix_and_space_count() -> None:
    names = (
        "p-a-2015.01",  # ours, space a
        "p-b-2015.01",  # ours, space b
        "p-a-2015.13",  # no such month
        "p-a-b-2015.01",  # space names have no '-': another prefix's index
        "p-notes",
        "px-a-2015.01",
        "p-A-2015.01",
        "p-a-2015.q5",  # no such quarter
        "p-a-15",  # no such year
        "p-a-b-2015",  # another prefix's yearly index
    )

    everything = plan(rows(*names), "p", 1, NOW)
    only_a = plan(rows(*names), "p", 1, NOW, space="a")

    assert [i.name for i in everything.expired] == ["p-a-2015.01", "p-b-2015.01"]
    assert [i.name for i in only_a.expired] == ["p-a-2015.01"]
    assert parse_index("p", "p-a-b-2015.01") is None
    assert parse_index("p-a", "p-a-b-2015.01") is not None


def test_closed_indices_have_no_counts_and_still_expire() -> None:
    result = plan([{"index": "p-a-2015.01", "docs.count": None, "store.size": None}], "p", 1, NOW)

    (index,) = result.expired
    assert (index.docs, index.bytes) == (None, None)


def test_deletes_are_split_to_keep_urls_short() -> None:
    names = [f"index-{n:04}" for n in range(10)]  # 10 characters each

    assert list(batches(names, max_chars=32)) == [names[0:3], names[3:6], names[6:9], names[9:]]
    assert list(batches([], max_chars=32)) == []


class FakeIndexStore:
    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.deleted: list[list[str]] = []

    async def indices(self, pattern: str) -> list[dict[str, Any]]:
        self.pattern = pattern
        return rows(*self.names)

    async def delete_indices(self, names: Sequence[str]) -> None:
        self.deleted.append(list(names))


@pytest.mark.anyio
async def test_deletes_name_every_index_exactly() -> None:
    """Clusters with action.destructive_requires_name refuse wildcards."""
    store = FakeIndexStore(["p-a-2015.01", "p-a-2015.02", "p-a-2026.11"])

    await apply(store, "p", 90, space="a", now=NOW)

    assert store.pattern == "p-a-*"
    assert store.deleted == [["p-a-2015.01", "p-a-2015.02"]]


# -- on the real node ----------------------------------------------------------------


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y.%m")


@pytest.fixture
async def old_and_new_indices(hq: Any, es: httpx.Client, prefix: str) -> list[str]:
    """Event indices of two spaces for two old months and the current one, plus an index
    that only looks like an event index."""
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    for token in ("development", "token-of-b"):
        events = [
            make_event(timestamp="2015-05-18T14:07:00Z"),
            make_event(timestamp="2015-06-01T00:00:00Z"),
            make_event(timestamp=now),
        ]
        assert (await hq.put_events(events, token=token)).status_code == 202
    es.put(f"/{prefix}-development-notes").raise_for_status()
    # Document counts include only refreshed documents.
    es.post(f"/{prefix}-*/_refresh").raise_for_status()
    return indices(es, prefix)


def indices(es: httpx.Client, prefix: str) -> list[str]:
    response = es.get(f"/_cat/indices/{prefix}-*", params={"format": "json", "h": "index"})
    response.raise_for_status()
    return sorted(row["index"] for row in response.json())


def retention(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logspace", "retention", *args],
        env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def environ(es_url: str, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")}
    env.update(LOGSPACE_ES_URL=es_url, LOGSPACE_INDEX_PREFIX=prefix)
    return env


@pytest.mark.anyio
async def test_a_dry_run_lists_what_would_go_and_deletes_nothing(
    old_and_new_indices: list[str], es: httpx.Client, prefix: str, environ: dict[str, str]
) -> None:
    result = retention(environ, "--keep", "90d", "--dry-run")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        f"would delete {prefix}-b-2015.05 (1 documents)",
        f"would delete {prefix}-b-2015.06 (1 documents)",
        f"would delete {prefix}-development-2015.05 (1 documents)",
        f"would delete {prefix}-development-2015.06 (1 documents)",
    ]
    assert lines[4].startswith("4 to delete, 2 kept: periods that ended before ")
    assert indices(es, prefix) == old_and_new_indices


@pytest.mark.anyio
async def test_retention_deletes_old_months_of_every_space_and_keeps_the_rest(
    old_and_new_indices: list[str], es: httpx.Client, prefix: str, environ: dict[str, str]
) -> None:
    result = retention(environ, "--keep", "90d")

    assert result.returncode == 0, result.stderr
    assert f"deleted {prefix}-development-2015.05 (1 documents)" in result.stdout
    assert indices(es, prefix) == [
        f"{prefix}-b-{this_month()}",
        f"{prefix}-development-{this_month()}",
        f"{prefix}-development-notes",
    ]


@pytest.mark.anyio
async def test_retention_of_one_space_leaves_the_others_alone(
    old_and_new_indices: list[str], es: httpx.Client, prefix: str, environ: dict[str, str]
) -> None:
    result = retention(environ, "--keep", "90d", "--space", "b")

    assert result.returncode == 0, result.stderr
    assert indices(es, prefix) == [
        f"{prefix}-b-{this_month()}",
        f"{prefix}-development-2015.05",
        f"{prefix}-development-2015.06",
        f"{prefix}-development-{this_month()}",
        f"{prefix}-development-notes",
    ]


@pytest.mark.anyio
async def test_closed_old_indices_are_deleted_too(
    old_and_new_indices: list[str], es: httpx.Client, prefix: str, environ: dict[str, str]
) -> None:
    es.post(f"/{prefix}-b-2015.05/_close").raise_for_status()

    result = retention(environ, "--keep", "90d", "--space", "b")

    assert result.returncode == 0, result.stderr
    assert f"deleted {prefix}-b-2015.05 (? documents)" in result.stdout
    assert f"{prefix}-b-2015.05" not in indices(es, prefix)


def test_bad_arguments_stop_the_command(environ: dict[str, str]) -> None:
    bad_keep = retention(environ, "--keep", "3 months")
    bad_space = retention(environ, "--keep", "90d", "--space", "a-*")

    assert bad_keep.returncode == 2
    assert "'3 months' is not a retention window such as 90d" in bad_keep.stderr
    assert bad_space.returncode == 2
    assert "'a-*' is not a space name" in bad_space.stderr


def test_an_unreachable_elasticsearch_fails_the_command(environ: dict[str, str]) -> None:
    environ["LOGSPACE_ES_URL"] = "http://127.0.0.1:9"

    result = retention(environ, "--keep", "90d")

    assert result.returncode == 1
    assert "Could not list the event indices: Elasticsearch could not be reached" in result.stderr


@pytest.mark.anyio
async def test_hq_applies_retention_itself_when_configured(
    old_and_new_indices: list[str], make_hq: Any, es: httpx.Client, prefix: str
) -> None:
    async with make_hq(retention_keep_days=90, retention_interval=3600.0) as hq:
        deadline = time.monotonic() + 30
        # Polls Elasticsearch and the metrics, which have no event to wait on. The indices can
        # be gone a moment before HQ has counted them, so wait for both.
        while time.monotonic() < deadline:
            metrics = (await hq.get("/metrics")).text
            if len(indices(es, prefix)) <= 3 and "deleted_indices_total 4.0" in metrics:
                break
            await anyio.sleep(0.1)

    assert indices(es, prefix) == [
        f"{prefix}-b-{this_month()}",
        f"{prefix}-development-{this_month()}",
        f"{prefix}-development-notes",
    ]
    assert "logspace_retention_deleted_indices_total 4.0" in metrics
