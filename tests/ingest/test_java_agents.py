"""The original Java agents' bodies (tests/data/java-agents, byte for byte as their serializer
writes them) through the real HQ into the real node: every batch the original HQ stored is
stored, and reads back through Elasticsearch and the read API."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from logspace.events import DEFAULT_LIMITS, format_instant
from logspace.ingest import transcoder

from ..reading import search, token
from ..scraping import scrape

pytestmark = pytest.mark.anyio

CORPUS = Path(__file__).parent.parent / "data" / "java-agents"
BODIES = {path.stem: path.read_bytes() for path in sorted(CORPUS.glob("*.json"))}
_NON_FINITE = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity"}


def expected_documents(body: bytes) -> list[dict[str, Any]]:
    """What HQ should store for a Java body, worked out independently of HQ: one-value arrays
    unwrapped, NaN and Infinity as strings, an empty marker left out."""
    events = json.loads(body, parse_constant=_NON_FINITE.__getitem__)
    for event in events:
        if event.get("marker") == "":
            del event["marker"]
        for family, values in list(event.items()):
            if family.endswith("-properties"):
                for name, value in values.items():
                    values[name] = value[0] if len(value) == 1 else value
    return events


def test_the_corpus_is_the_java_serializers_output() -> None:
    """Compact, bare non-finite tokens, millisecond timestamps, every value in an array."""
    assert set(BODIES) >= {"os-agents", "no-type", "non-finite", "long-string"}
    assert b"[NaN]" in BODIES["os-agents"]
    assert b'"marker":""' in BODIES["os-agents"]
    assert b'"type"' not in BODIES["no-type"]
    assert len(json.loads(BODIES["long-string"])[0]["string-properties"]["message"][0]) > 40_000
    for body in BODIES.values():
        outside_strings = re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', body)
        assert not re.search(rb"\s", outside_strings)


@pytest.mark.parametrize("name", BODIES)
def test_the_c_path_takes_every_java_body(name: str) -> None:
    now = datetime(2026, 6, 2, tzinfo=UTC)
    assert transcoder.transcode(BODIES[name], "s", "p", DEFAULT_LIMITS, now) is not None


@pytest.mark.parametrize("name", BODIES)
async def test_every_java_body_is_stored_and_reads_back(hq: Any, stored: Any, name: str) -> None:
    body = BODIES[name]

    response = await hq.put("/api/events", content=body, headers=token("development"))

    assert response.status_code == 202, response.text
    documents = [{k: v for k, v in d.items() if k != "_index"} for d in stored()]
    expected = expected_documents(body)
    assert documents == [event | {"space": "development"} for event in expected]
    assert (await search(hq, size=1000))["events"] == expected


async def test_what_elasticsearch_cannot_index_is_kept_listed_and_counted(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    for name in ("non-finite", "long-string", "os-agents"):
        response = await hq.put("/api/events", content=BODIES[name], headers=token("development"))
        assert response.status_code == 202, response.text
    es.post(f"/{prefix}-*/_refresh").raise_for_status()

    hits = es.post(
        f"/{prefix}-*/_search",
        json={"size": 100, "query": {"exists": {"field": "_ignored"}}, "_source": False},
    ).json()["hits"]["hits"]
    ignored = sorted(field for hit in hits for field in hit["_ignored"])
    assert ignored == [
        "double-properties.peak",
        "double-properties.process_cpu_load",
        "double-properties.system_cpu_load",
        "double-properties.trough",
        "float-properties.hit_ratio",
        "string-properties.message",
    ]
    # Values Elasticsearch indexes still aggregate, the others are left out of them.
    loads = es.post(
        f"/{prefix}-*/_search",
        json={"size": 0, "aggs": {"load": {"max": {"field": "double-properties.process_cpu_time"}},
                                   "largest": {"max": {"field": "float-properties.largest"}}}},
    ).json()["aggregations"]  # fmt: skip
    assert loads["load"]["value"] == 1.2345678e10
    assert loads["largest"]["value"] == pytest.approx(3.4028235e38)
    metrics = await scrape(hq)
    name = "logspace_unindexed_values_total"
    assert metrics.value(name, space="development", reason="non-finite") == 5
    assert metrics.value(name, space="development", reason="long-string") == 1


def _now(body: bytes, moment: datetime) -> bytes:
    """The body with every timestamp moved to `moment` (the corpus is dated 2026-06-01)."""
    events = json.loads(body)
    for event in events:
        event["timestamp"] = format_instant(moment)
    return json.dumps(events, separators=(",", ":")).encode()


async def test_events_without_a_type_are_found_exported_and_counted_everywhere(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    for name in ("no-type", "os-agents"):
        response = await hq.put(
            "/api/events", content=_now(BODIES[name], moment), headers=token("development")
        )
        assert response.status_code == 202, response.text
    es.post(f"/{prefix}-*/_refresh").raise_for_status()

    untyped = await search(hq, where={"field": "type", "exists": False})
    assert [e["agent-id"] for e in untyped["events"]] == ["orders/app", "orders/app"]
    assert all("type" not in event for event in untyped["events"])
    no_marker = await search(hq, where={"field": "marker", "exists": False})
    assert no_marker["total"] == 6  # an empty marker is stored as none

    export = await hq.get(
        "/events/export", params={"format": "csv", "agent-id": "orders/app"}, headers=token()
    )
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(row["type"], row["marker"]) for row in rows] == [("", ""), ("", "")]

    window = {
        "start": format_instant(moment - timedelta(minutes=1)),
        "end": format_instant(moment + timedelta(minutes=1)),
        "gap": 120,
    }
    series = await hq.post(
        "/time-series",
        content=orjson.dumps(window | {"definitions": [{"agent-id": "orders/app"}]}),
        headers=token(),
    )
    assert series.json()["data"] == [[2]]
    suggestions = (await hq.get("/suggestions", params={"text": "orders"}, headers=token())).json()
    assert suggestions["agents"] == [{"agent-id": "orders/app", "event-count": 2}]
    activity = (
        await hq.get("/agent-activity", params={"duration": 600, "steps": 1}, headers=token())
    ).json()
    counts = {(a["system"], a["agent-id"]): a["event-count"] for a in activity["agents"]}
    assert counts[("app-host-1", "orders/app")] == 2
