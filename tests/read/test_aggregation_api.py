"""Time series, suggestions and agent activity through HQ, against a real Elasticsearch node,
with seeded events whose expected results each test computes itself."""

from __future__ import annotations

import statistics
from typing import Any

import httpx
import pytest

from logspace.read.params import format_instant, parse_instant
from logspace.read.suggestions import matches
from logspace.testing import make_event

from ..reading import fresh, seed, token

pytestmark = pytest.mark.anyio

START = "2015-05-18T14:00:05Z"  # not on a minute: buckets start here, not at 14:00
END = "2015-05-18T14:05:05Z"
GAP = 60
BUCKETS = 5

# Timestamps around the bucket edges; None marks the ones outside [START, END).
TIMES = [
    "2015-05-18T14:00:04.999Z",  # just before the window
    "2015-05-18T14:00:05.000Z",  # the first instant: bucket 0
    "2015-05-18T14:00:30.000Z",
    "2015-05-18T14:01:04.999Z",  # last instant of bucket 0
    "2015-05-18T14:01:05.000Z",  # first instant of bucket 1
    # bucket 2 stays empty
    "2015-05-18T14:03:10.000Z",
    "2015-05-18T14:03:20.000Z",
    "2015-05-18T14:03:30.000Z",
    "2015-05-18T14:05:04.999Z",  # last instant of the window: bucket 4
    "2015-05-18T14:05:05.000Z",  # the end is not in the window
]


def bucket_of(timestamp: str) -> int | None:
    offset = parse_instant(timestamp, "t") - parse_instant(START, "t")
    position = offset // (GAP * 1000)
    return position if 0 <= position < BUCKETS else None


def cpu_event(n: int, timestamp: str) -> dict[str, Any]:
    return make_event(
        id=f"cpu{n}",
        agent_id="os/cpu",
        system=f"h{n % 2}",
        timestamp=timestamp,
        double_properties={"load": n * 0.25},
        integer_properties={"n": n * 10},
        long_properties={"big": 2**40 + n},
        date_properties={"seen": f"2015-05-{n + 1:02d}T12:00:00Z"},
        string_properties={"disk": "/" if n % 3 else "/home"},
        boolean_properties={"ok": n % 2 == 0},
    )


CPU = [cpu_event(n, t) for n, t in enumerate(TIMES)]
# Another agent in the same buckets, and an os/cpu event without the properties.
OTHER = [
    make_event(id="mem1", agent_id="os/memory", timestamp="2015-05-18T14:01:30Z",
               double_properties={"load": 99.0}),
    make_event(id="bare", agent_id="os/cpu", timestamp="2015-05-18T14:03:40Z"),
]  # fmt: skip


def by_bucket(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    buckets: list[list[dict[str, Any]]] = [[] for _ in range(BUCKETS)]
    for event in events:
        position = bucket_of(event["timestamp"])
        if position is not None:
            buckets[position].append(event)
    return buckets


def values(events: list[dict[str, Any]], family: str, name: str) -> list[Any]:
    return [e[family][name] for e in events if name in e.get(family, {})]


def millis(text: str) -> int:
    return parse_instant(text.replace(".000Z", "Z"), "t")


def expected_series(aggregate: str, family: str, name: str) -> list[Any]:
    """What each bucket should hold, computed here from the seeded events."""
    result: list[Any] = []
    for events in by_bucket([e for e in CPU + OTHER if e["agent-id"] == "os/cpu"]):
        found = values(events, family, name)
        if aggregate == "count":
            result.append(len(found))
        elif aggregate == "distinct-count":
            result.append(len(set(found)))
        elif not found:
            result.append(None)
        elif family == "date-properties":
            stamps = [millis(v) for v in found]
            value = {"min": min, "max": max, "avg": statistics.fmean}[aggregate](stamps)
            result.append(format_instant(value))
        else:
            compute = {"min": min, "max": max, "sum": sum, "avg": statistics.fmean}[aggregate]
            result.append(compute(found))
    return result


async def time_series(
    hq: Any, definitions: list[dict[str, Any]], space_token: str = "development", **window: Any
) -> Any:
    body = {"start": START, "end": END, "gap": GAP, "definitions": definitions, **window}
    return await hq.post("/time-series", json=body, headers=token(space_token))


@pytest.fixture
async def seeded(hq: Any, es: httpx.Client, prefix: str) -> Any:
    await seed(hq, es, prefix, fresh(CPU + OTHER))
    return hq


PLAN = [
    ("count", "double-properties", "load"),
    ("min", "double-properties", "load"),
    ("max", "double-properties", "load"),
    ("avg", "double-properties", "load"),
    ("sum", "double-properties", "load"),
    ("min", "integer-properties", "n"),
    ("max", "long-properties", "big"),
    ("sum", "integer-properties", "n"),
    ("min", "date-properties", "seen"),
    ("max", "date-properties", "seen"),
    ("avg", "date-properties", "seen"),
    ("distinct-count", "string-properties", "disk"),
    ("count", "boolean-properties", "ok"),
    ("distinct-count", "boolean-properties", "ok"),
]


async def test_each_aggregate_gives_one_value_per_bucket_with_nulls_for_empty_ones(
    seeded: Any,
) -> None:
    definitions = [
        {"agent-id": "os/cpu", "property": f"{family}.{name}", "aggregate": aggregate}
        for aggregate, family, name in PLAN
    ]

    response = await time_series(seeded, definitions)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["start"] == "2015-05-18T14:00:05.000Z"
    assert answer["end"] == "2015-05-18T14:05:05.000Z"
    assert answer["gap"] == GAP
    assert answer["bucket-count"] == BUCKETS
    for (aggregate, family, name), series in zip(PLAN, answer["data"], strict=True):
        assert series == pytest.approx(expected_series(aggregate, family, name)), (aggregate, name)
    loads = answer["data"][1]
    assert loads[2] is None  # bucket 2 is empty
    assert answer["data"][0][2] == 0


async def test_bucket_edges_are_start_inclusive_and_end_exclusive(seeded: Any) -> None:
    """Counting every os/cpu event (no property): 14:00:04.999 and 14:05:05 are outside."""
    response = await time_series(seeded, [{"agent-id": "os/cpu"}])

    assert response.json()["data"] == [[3, 1, 0, 4, 1]]


async def test_percentiles_and_a_filter_per_definition(seeded: Any) -> None:
    definitions = [
        {"agent-id": "os/cpu", "property": "integer-properties.n", "aggregate": "percentile",
         "percent": 50},
        {"agent-id": "os/cpu", "system": "h1", "aggregate": "count"},
        {"property": "double-properties.load", "aggregate": "max",
         "where": {"field": "agent-id", "one-of": ["os/memory"]}},
    ]  # fmt: skip

    answer = (await time_series(seeded, definitions)).json()

    numbers = [values(b, "integer-properties", "n") for b in by_bucket(CPU)]
    medians = [statistics.median(n) if n else None for n in numbers]
    assert answer["data"][0] == pytest.approx(medians)
    in_h1 = [sum(1 for e in b if e["system"] == "h1") for b in by_bucket(CPU)]
    assert answer["data"][1] == in_h1
    assert answer["data"][2] == [None, 99.0, None, None, None]


async def test_an_aggregate_that_does_not_fit_the_type_gets_a_400(seeded: Any) -> None:
    response = await time_series(
        seeded, [{"agent-id": "os/cpu", "property": "string-properties.disk", "aggregate": "avg"}]
    )

    assert response.status_code == 400
    assert response.json() == {
        "type": "INVALID_PARAMETER",
        "message": "Invalid parameter 'definitions[0].aggregate': 'avg' does not fit property "
        "'string-properties.disk' of type string; allowed: count, distinct-count.",
        "parameters": {
            "parameter": "definitions[0].aggregate",
            "reason": "'avg' does not fit property 'string-properties.disk' of type string; "
            "allowed: count, distinct-count",
            "property-type": "string",
            "allowed-aggregates": ["count", "distinct-count"],
        },
    }


@pytest.mark.parametrize(
    ("window", "parameter"),
    [
        ({"end": START}, "end"),
        ({"gap": 0}, "gap"),
        ({"gap": 1, "end": "2015-05-19T14:00:05Z"}, "gap"),
    ],
)
async def test_an_invalid_window_gets_a_400(
    seeded: Any, window: dict[str, Any], parameter: str
) -> None:
    response = await time_series(seeded, [{"agent-id": "os/cpu"}], **window)

    assert response.status_code == 400
    assert response.json()["parameters"]["parameter"] == parameter


async def test_a_space_without_events_gets_zeros(hq: Any) -> None:
    response = await time_series(hq, [{"aggregate": "count"}, {"aggregate": "count"}])

    assert response.json()["data"] == [[0] * BUCKETS, [0] * BUCKETS]


async def test_a_property_the_space_never_had_gets_a_400_naming_it(seeded: Any) -> None:
    """A misspelt property would otherwise draw an empty chart (the original answered 400 too).
    A property of another family is another property."""
    misspelt = await time_series(
        seeded,
        [
            {"agent-id": "os/cpu", "property": "double-properties.load", "aggregate": "avg"},
            {"agent-id": "os/cpu", "property": "double-properties.laod", "aggregate": "avg"},
        ],
    )
    other_family = await time_series(
        seeded, [{"property": "long-properties.load", "aggregate": "count"}]
    )
    empty_space = await time_series(
        seeded, [{"property": "double-properties.load", "aggregate": "avg"}], "token-of-b"
    )

    assert misspelt.status_code == 400
    assert misspelt.json()["parameters"] == {
        "parameter": "definitions[1].property",
        "reason": "space 'development' has no property 'double-properties.laod' "
        "(did you mean 'double-properties.load'?)",
        "property": "double-properties.laod",
    }
    assert other_family.status_code == 400
    assert other_family.json()["parameters"]["property"] == "long-properties.load"
    assert empty_space.status_code == 400
    assert empty_space.json()["parameters"]["reason"] == (
        "space 'b' has no property 'double-properties.load'"
    )


AGENT_IDS = ["os/cpu", "OS/Memory", "jvm/my-app", "a.b(c)*", "cpu", "x_cpu.load", "Überwachung"]


async def test_suggestions_match_word_starts_ignoring_case_as_documented(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    events = [
        make_event(agent_id=agent, system=f"host-{i}.example", long_properties={f"p{i}.used": i})
        for i, agent in enumerate(AGENT_IDS)
    ]
    await seed(hq, es, prefix, events)

    for text in ["cpu", "CPU", "os/", "mem", "b(", "(c", "*", "über", "load", "ex", "x", ""]:
        response = await hq.get(
            "/suggestions", params={"text": text, "size": "100"}, headers=token()
        )
        assert response.status_code == 200
        answer = response.json()
        assert sorted(a["agent-id"] for a in answer["agents"]) == sorted(
            a for a in AGENT_IDS if matches(text, a)
        ), text
        assert sorted(s["system"] for s in answer["systems"]) == sorted(
            e["system"] for e in events if matches(text, e["system"])
        ), text


async def test_suggested_properties_carry_their_types_and_follow_the_scope(seeded: Any) -> None:
    everything = (await seeded.get("/suggestions", headers=token())).json()
    memory = (
        await seeded.get("/suggestions", params={"agent-id": "os/memory"}, headers=token())
    ).json()
    loads = (await seeded.post("/suggestions", json={"text": "LO"}, headers=token())).json()

    assert everything["properties"] == [
        {"property": "long-properties.big", "name": "big", "type": "long"},
        {"property": "string-properties.disk", "name": "disk", "type": "string"},
        {"property": "double-properties.load", "name": "load", "type": "double"},
        {"property": "integer-properties.n", "name": "n", "type": "integer"},
        {"property": "boolean-properties.ok", "name": "ok", "type": "boolean"},
        {"property": "date-properties.seen", "name": "seen", "type": "date"},
    ]
    assert everything["agents"] == [
        {"agent-id": "os/cpu", "event-count": len(CPU) + 1},
        {"agent-id": "os/memory", "event-count": 1},
    ]
    assert memory["properties"] == [
        {"property": "double-properties.load", "name": "load", "type": "double"}
    ]
    assert memory["agents"] == [{"agent-id": "os/memory", "event-count": 1}]
    assert [p["name"] for p in loads["properties"]] == ["load"]


ACTIVITY_END = "2015-05-18T15:00:00Z"


def minutes_before_end(minutes: float) -> str:
    return format_instant(parse_instant(ACTIVITY_END, "t") - round(minutes * 60_000))


async def test_agent_activity_counts_and_histograms_each_agent_with_events(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    """A 10-minute window in 5 steps of 2 minutes; only agents with events in it are listed."""
    plan = {
        ("h1", "os/cpu"): [0.5, 1.5, 9.9, 9.0],
        ("h2", "os/cpu"): [3.0, 3.5],
        ("h1", "jvm"): [5.0, 5.1, 5.2, 7.9, 0.001],
        ("h3", "idle"): [10.01, 30.0],  # before the window
    }
    events = [
        make_event(system=system, agent_id=agent, timestamp=minutes_before_end(m))
        for (system, agent), minutes in plan.items()
        for m in minutes
    ]
    await seed(hq, es, prefix, events)

    def history(minutes: list[float]) -> list[int]:
        counts = [0] * 5
        for m in minutes:
            position = (600_000 - round(m * 60_000)) // 120_000
            if 0 <= position < 5:
                counts[position] += 1
        return counts

    response = await hq.get(
        "/agent-activity",
        params={"end": ACTIVITY_END, "duration": "600", "steps": "5"},
        headers=token(),
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["start"] == "2015-05-18T14:50:00.000Z"
    assert answer["gap"] == 120
    assert answer["total"] == 3
    assert answer["complete"] is True
    expected = [
        {"system": "h1", "agent-id": "jvm", "event-count": 5,
         "history": history(plan["h1", "jvm"])},
        {"system": "h1", "agent-id": "os/cpu", "event-count": 4,
         "history": history(plan["h1", "os/cpu"])},
        {"system": "h2", "agent-id": "os/cpu", "event-count": 2,
         "history": history(plan["h2", "os/cpu"])},
    ]  # fmt: skip
    assert answer["agents"] == expected
    assert answer["max-history-value"] == max(max(a["history"]) for a in expected)

    paged = await hq.get(
        "/api/agent-activity",
        params={"end": ACTIVITY_END, "duration": "600", "steps": "5", "sort": "agent-id:desc",
                "offset": "1", "size": "1"},
        headers=token(),
    )  # fmt: skip
    # os/cpu of h1, then of h2 (ties in order of system, either way), then jvm: the second.
    assert paged.json()["agents"] == [expected[2]]
    assert paged.json()["total"] == 3


async def test_aggregations_never_count_another_spaces_events(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    await seed(hq, es, prefix, fresh(CPU))
    mine = [
        make_event(agent_id="b-agent", system="b-host", timestamp=minutes_before_end(1),
                   long_properties={"b_only": 1}),
    ]  # fmt: skip
    await seed(hq, es, prefix, mine, space_token="token-of-b")
    reader = token("reader-of-b")

    series = await hq.post(
        "/time-series",
        json={"start": START, "end": ACTIVITY_END, "gap": 3600, "definitions": [{}]},
        headers=reader,
    )
    suggested = await hq.get("/suggestions", headers=reader)
    active = await hq.get(
        "/agent-activity", params={"end": ACTIVITY_END, "duration": "3600"}, headers=reader
    )

    assert series.json()["data"] == [[1]]
    assert suggested.json() == {
        "agents": [{"agent-id": "b-agent", "event-count": 1}],
        "systems": [{"system": "b-host", "event-count": 1}],
        "properties": [{"property": "long-properties.b_only", "name": "b_only", "type": "long"}],
    }
    assert [a["agent-id"] for a in active.json()["agents"]] == ["b-agent"]
