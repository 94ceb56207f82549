"""Searching and exporting events through HQ, against a real Elasticsearch node: filters on
every field type, cursors across inserts, exports in every format, and space isolation."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from openapi_spec_validator import validate

from logspace.app import API_ROUTES
from logspace.testing import make_event

from ..reading import fresh, ids, search, seed, token

pytestmark = pytest.mark.anyio


def typed_event(n: int) -> dict[str, Any]:
    """Event n of a set where every property family varies with n."""
    event = make_event(
        id=f"e{n:02d}",
        type="os/cpu" if n % 2 else "os/memory",
        system=f"host{n % 3}",
        agent_id=f"agent{n % 4}",
        timestamp=f"2015-05-18T14:{n:02d}:00Z",
        boolean_properties={"daemon": n % 2 == 0},
        date_properties={"started": f"2015-05-{n + 1:02d}T00:00:00Z"},
        double_properties={"load": n / 10},
        float_properties={"ratio": n * 0.5},
        integer_properties={"count": n},
        long_properties={"bytes": n * 2**40},
        string_properties={"tags": ["all", f"t{n % 5}"], "path": f"/disk/{n}"},
    )
    if n % 7 == 0:
        event["marker"] = "seven"
        del event["double-properties"]
    return event


EVENTS = [typed_event(n) for n in range(20)]


def prop(event: dict[str, Any], family: str, name: str) -> Any:
    return event.get(f"{family}-properties", {}).get(name)


# A condition and the same predicate in Python: the test computes what should match.
CASES: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    ({"field": "boolean-properties.daemon", "equals": True}, lambda e: e["id"][-1] in "02468"),
    (
        {"field": "date-properties.started", "range": {"gte": "2015-05-05T00:00:00Z"}},
        lambda e: prop(e, "date", "started") >= "2015-05-05",
    ),
    (
        {"field": "date-properties.started", "equals": "2015-05-03T02:00:00+02:00"},
        lambda e: prop(e, "date", "started").startswith("2015-05-03T00:00:00"),
    ),
    (
        {"field": "double-properties.load", "range": {"gt": 0.5, "lte": 1.2}},
        lambda e: prop(e, "double", "load") is not None and 0.5 < prop(e, "double", "load") <= 1.2,
    ),
    (
        {"field": "float-properties.ratio", "equals": 2.5},
        lambda e: prop(e, "float", "ratio") == 2.5,
    ),
    (
        {"field": "integer-properties.count", "one-of": [1, 3, 19, 40]},
        lambda e: prop(e, "integer", "count") in (1, 3, 19),
    ),
    (
        {"field": "long-properties.bytes", "range": {"lt": 3 * 2**40}},
        lambda e: prop(e, "long", "bytes") < 3 * 2**40,
    ),
    (
        {"field": "string-properties.tags", "equals": "t2"},
        lambda e: "t2" in prop(e, "string", "tags"),
    ),
    (
        {"field": "string-properties.path", "range": {"gte": "/disk/18"}},
        lambda e: prop(e, "string", "path") >= "/disk/18",
    ),
    ({"field": "double-properties.load", "exists": False}, lambda e: "double-properties" not in e),
    ({"field": "marker", "equals": "seven"}, lambda e: e.get("marker") == "seven"),
    (
        {
            "or": [
                {"field": "system", "equals": "host0"},
                {
                    "and": [
                        {"field": "agent-id", "equals": "agent1"},
                        {"not": {"field": "type", "equals": "os/cpu"}},
                    ]
                },
            ]
        },
        lambda e: e["system"] == "host0" or (e["agent-id"] == "agent1" and e["type"] != "os/cpu"),
    ),
    (
        {
            "field": "timestamp",
            "range": {"gte": "2015-05-18T14:05:00Z", "lt": "2015-05-18T14:08:00Z"},
        },
        lambda e: "14:05" <= e["timestamp"][11:16] < "14:08",
    ),
]


async def test_filters_on_every_property_type_find_exactly_the_matching_events(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    await seed(hq, es, prefix, fresh(EVENTS))

    for condition, predicate in CASES:
        expected = [e["id"] for e in EVENTS if predicate(e)]
        found = await search(hq, where=condition, size=100)
        assert ids(found["events"]) == expected, condition
        assert found["total"] == len(expected)


async def test_the_main_fields_and_the_time_window_filter_too(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    await seed(hq, es, prefix, fresh(EVENTS))

    found = await search(
        hq,
        type="os/cpu",
        system=["host1", "host2"],
        start="2015-05-18T14:03:00Z",
        end="2015-05-18T14:15:00Z",
    )

    expected = [
        e["id"]
        for e in EVENTS
        if e["type"] == "os/cpu"
        and e["system"] in ("host1", "host2")
        and "14:03" <= e["timestamp"][11:16] < "14:15"
    ]
    assert ids(found["events"]) == expected


async def test_get_takes_the_same_filter_in_the_query_string(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    """The original HQ ignored GET's filter; here GET and POST answer alike."""
    await seed(hq, es, prefix, fresh(EVENTS))
    condition = {"field": "integer-properties.count", "range": {"gte": 15}}

    response = await hq.get(
        "/api/events",
        params=[
            ("agent-id", "agent3"),
            ("agent-id", "agent0"),
            ("where", orjson.dumps(condition).decode()),
        ],
        headers=token(),
    )

    assert response.status_code == 200
    posted = await search(hq, **{"agent-id": ["agent3", "agent0"]}, where=condition)
    assert response.json() == posted
    assert ids(posted["events"]) == ["e15", "e16", "e19"]


async def test_events_come_back_as_stored_without_the_space_field(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    await seed(hq, es, prefix, [typed_event(1)])

    (event,) = (await search(hq))["events"]

    assert "space" not in event
    assert event["long-properties"] == {"bytes": 2**40}
    assert event["string-properties"]["tags"] == ["all", "t1"]
    assert event["timestamp"] == "2015-05-18T14:01:00.000Z"


def at(minute: int, second: int, name: str) -> dict[str, Any]:
    return make_event(id=name, timestamp=f"2015-05-18T14:{minute:02d}:{second:02d}Z")


async def test_a_cursor_pages_on_correctly_while_events_arrive(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    """No duplicates and no gaps: events stored meanwhile appear only if they sort after the
    cursor, and equal timestamps are split by id."""
    first = [at(10, s, f"a{s:02d}") for s in range(0, 50, 2)] + [at(10, 20, "a20b")]
    await seed(hq, es, prefix, first)

    page1 = await search(hq, size=10)
    assert ids(page1["events"]) == sorted(ids(first))[:10]
    assert page1["has-more"] is True
    assert page1["total"] == 26

    late = [at(10, 1, "late-before"), at(10, 40, "x-after"), at(11, 0, "z-last")]
    await seed(hq, es, prefix, late)
    seen = list(ids(page1["events"]))
    cursor = page1["next-cursor"]
    while cursor:
        page = await search(hq, size=10, cursor=cursor)
        seen += ids(page["events"])
        cursor = page["next-cursor"] if page["has-more"] else None

    everything = sorted(first + late, key=lambda e: (e["timestamp"], e["id"]))
    expected = [e["id"] for e in everything if e["id"] != "late-before"]
    assert seen == expected


async def test_descending_pages_and_an_exhausted_cursor_keeps_its_place(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    await seed(hq, es, prefix, [at(10, s, f"a{s:02d}") for s in range(5)])

    page1 = await search(hq, size=3, order="desc")
    page2 = await search(hq, size=3, order="desc", cursor=page1["next-cursor"])
    page3 = await search(hq, size=3, order="desc", cursor=page2["next-cursor"])

    assert ids(page1["events"]) == ["a04", "a03", "a02"]
    assert ids(page2["events"]) == ["a01", "a00"]
    assert page2["has-more"] is False
    assert page3["events"] == []
    assert page3["next-cursor"] == page2["next-cursor"]


async def test_a_cursor_with_another_filter_gets_a_400(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    await seed(hq, es, prefix, [at(10, s, f"a{s}") for s in range(3)])
    cursor = (await search(hq, size=1))["next-cursor"]

    response = await hq.post("/events", json={"type": "other", "cursor": cursor}, headers=token())

    assert response.status_code == 400
    assert response.json()["parameters"]["parameter"] == "cursor"


async def test_csv_export_has_a_header_with_every_property_column_and_plain_numbers(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    events = [typed_event(n) for n in (1, 7)]
    events[0]["string-properties"]["path"] = 'C:\\a;b,"c"'
    await seed(hq, es, prefix, [*events, make_event(type="other", long_properties={"only": 1})])

    response = await hq.get(
        "/events/export", params={"format": "csv", "type": "os/cpu"}, headers=token()
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert rows[0] == [
        "id", "type", "system", "agent-id", "timestamp", "pid", "gid", "marker",
        "boolean-properties.daemon", "date-properties.started", "double-properties.load",
        "float-properties.ratio", "integer-properties.count", "long-properties.bytes",
        "string-properties.path", "string-properties.tags",
    ]  # fmt: skip
    assert rows[1] == [
        "e01", "os/cpu", "host1", "agent1", "2015-05-18T14:01:00.000Z", "", "", "",
        "false", "2015-05-02T00:00:00.000Z", "0.1", "0.5", "1", "1099511627776",
        'C:\\a;b,"c"', '["all","t1"]',
    ]  # fmt: skip
    assert rows[2][7:11] == ["seven", "false", "2015-05-08T00:00:00.000Z", ""]
    assert rows[2][13] == str(7 * 2**40)
    assert len(rows) == 3
    assert response.text.count("\r\n") == 3


async def test_a_large_export_streams_every_event_once_in_order(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    """More events than one page: JSON, NDJSON and CSV each carry all of them."""
    events = [
        make_event(id=f"e{n:04d}", timestamp=f"2015-05-18T{n // 60:02d}:{n % 60:02d}:00Z")
        for n in range(1234)
    ]
    await seed(hq, es, prefix, events)
    expected = ids(events)

    as_json = await hq.post("/events/export", json={"format": "json"}, headers=token())
    as_ndjson = await hq.get("/api/events/export", params={"format": "ndjson"}, headers=token())
    as_csv = await hq.get(
        "/events/export", params={"format": "csv", "delimiter": "semicolon"}, headers=token()
    )
    reversed_ = await hq.get(
        "/events/export",
        params={"format": "ndjson", "order": "desc", "limit": "1001"},
        headers=token(),
    )

    assert ids(orjson.loads(as_json.content)) == expected
    assert as_ndjson.headers["content-type"] == "application/x-ndjson"
    assert [orjson.loads(line)["id"] for line in as_ndjson.content.splitlines()] == expected
    rows = list(csv.reader(io.StringIO(as_csv.text, newline=""), delimiter=";"))
    assert [row[0] for row in rows[1:]] == expected
    assert [orjson.loads(line)["id"] for line in reversed_.content.splitlines()] == (
        expected[::-1][:1001]
    )


async def test_a_token_never_sees_another_spaces_events(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    mine = [
        make_event(id=f"b{n}", agent_id="agent-b", double_properties={"x": 1.0}) for n in range(3)
    ]
    theirs = [
        make_event(id=f"d{n}", agent_id="agent-d", long_properties={"y": 1}) for n in range(3)
    ]
    await seed(hq, es, prefix, mine, space_token="token-of-b")
    await seed(hq, es, prefix, theirs)

    found = await search(hq, "reader-of-b", size=100)
    exported = await hq.get(
        "/events/export", params={"format": "csv"}, headers=token("reader-of-b")
    )
    guessed = await search(hq, "reader-of-b", where={"field": "agent-id", "equals": "agent-d"})

    assert sorted(ids(found["events"])) == ["b0", "b1", "b2"]
    assert "d0" not in exported.text
    assert "long-properties.y" not in exported.text
    assert guessed["events"] == []
    assert sorted(ids((await search(hq, size=100))["events"])) == ["d0", "d1", "d2"]


async def test_reading_needs_a_token_that_may_read(hq: Any) -> None:
    missing = await hq.get("/events")
    write_only = await hq.get("/events", headers=token("second-of-b"))
    unknown = await hq.post("/time-series", json={}, headers=token("nope"))

    assert missing.status_code == 403
    assert missing.json()["type"] == "MISSING_SPACE_TOKEN"
    assert write_only.status_code == 403
    assert write_only.json()["type"] == "ACCESS_DENIED"
    assert write_only.json()["parameters"] == {"space": "b", "access": "read"}
    assert unknown.json()["type"] == "INVALID_SPACE_TOKEN"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "parameter"),
    [
        ("GET", "/events", {"params": {"size": "5000"}}, "size"),
        ("GET", "/events", {"params": {"colour": "red"}}, "colour"),
        ("POST", "/events", {"json": [make_event()]}, "body"),
        ("POST", "/events/export", {"json": {"format": "xls"}}, "format"),
        ("GET", "/suggestions", {"params": {"text": "x" * 101}}, "text"),
        ("GET", "/agent-activity", {"params": {"duration": "10"}}, "duration"),
        ("POST", "/time-series", {"json": {"start": "2015"}}, "start"),
    ],
)
async def test_bad_parameters_get_a_400_naming_them(
    hq: Any, method: str, path: str, kwargs: dict[str, Any], parameter: str
) -> None:
    response = await hq.request(method, path, headers=token(), **kwargs)

    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "INVALID_PARAMETER"
    assert body["parameters"]["parameter"] == parameter
    assert f"'{parameter}'" in body["message"]


async def test_the_openapi_document_is_valid_and_describes_every_route(hq: Any) -> None:
    response = await hq.get("/api/openapi.json")

    assert response.status_code == 200
    document = response.json()
    validate(document)
    described = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    mounted = {(path, method) for path, _, methods in API_ROUTES for method in methods}
    assert described == mounted
