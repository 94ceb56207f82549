"""PUT /events against a real Elasticsearch node: the seed contract and what ends up stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from logspace.testing import make_event

pytestmark = pytest.mark.anyio

SEED_REQUEST = (Path(__file__).parent.parent / "data" / "seed-request.json").read_bytes()


async def test_the_seed_sample_request_is_accepted_and_stored_with_typed_fields(
    hq: Any, stored: Any, es: httpx.Client, prefix: str
) -> None:
    """The seed's sample call answers 202 with an empty body; both events are searchable."""
    response = await hq.put_events(SEED_REQUEST)

    assert response.status_code == 202
    assert response.content == b""
    by_type = {event["type"]: event for event in stored()}
    assert sorted(by_type) == ["os/cpu", "os/memory"]
    cpu, memory = by_type["os/cpu"], by_type["os/memory"]
    assert cpu["_index"] == f"{prefix}-development-2015.05"
    assert cpu["space"] == "development"
    assert cpu["id"] == "bbcca991-1070-4325-b719-dc9014816a2e"
    assert cpu["timestamp"] == "2015-05-18T14:07:00.000Z"
    assert cpu["double-properties"] == {"system_cpu_load": 0.44324237001029815}
    assert cpu["integer-properties"] == {"processor_count": 4}
    assert memory["long-properties"]["total_memory"] == 16490561536

    mapping = es.get(f"/{prefix}-*/_mapping").json()
    (properties,) = (m["mappings"]["properties"] for m in mapping.values())
    assert properties["timestamp"]["type"] == "date"
    assert properties["space"]["type"] == "keyword"
    assert properties["double-properties"]["properties"]["system_cpu_load"]["type"] == "double"
    assert properties["integer-properties"]["properties"]["processor_count"]["type"] == "integer"
    assert properties["long-properties"]["properties"]["total_memory"]["type"] == "long"


async def test_a_range_query_on_an_integer_property_works(hq: Any, stored: Any) -> None:
    """Integer properties are numbers in Elasticsearch, not strings: ranges compare numerically."""
    events = [
        make_event(integer_properties={"processor_count": n}, timestamp="2015-05-18T14:07:00Z")
        for n in (2, 4, 16)
    ]
    assert (await hq.put_events(events)).status_code == 202

    found = stored({"range": {"integer-properties.processor_count": {"gte": 3, "lt": 10}}})

    assert [e["integer-properties"]["processor_count"] for e in found] == [4]


async def test_a_missing_token_gets_the_exact_403_body(hq: Any) -> None:
    response = await hq.put_events(SEED_REQUEST, token=None)

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    assert response.content == (
        b'{"type":"MISSING_SPACE_TOKEN","message":"Missing header \'logspace.space-token\'."}'
    )


async def test_an_unknown_token_gets_the_exact_403_body(hq: Any, stored: Any) -> None:
    response = await hq.put_events(SEED_REQUEST, token="not-a-token")

    assert response.status_code == 403
    assert response.content == (
        b'{"type":"INVALID_SPACE_TOKEN","message":"Unrecognized space-token \'not-a-token\'.",'
        b'"parameters":{"space-token":"not-a-token"}}'
    )
    assert stored() == []


async def test_an_empty_array_is_accepted(hq: Any) -> None:
    response = await hq.put_events(b"[]")

    assert response.status_code == 202


async def test_sending_a_batch_again_stores_nothing_twice(hq: Any, stored: Any) -> None:
    """Agents retry whole batches: the event id is the document id, so a retry is a no-op."""
    assert (await hq.put_events(SEED_REQUEST)).status_code == 202
    first = stored()

    again = await hq.put_events(SEED_REQUEST)

    assert again.status_code == 202
    assert stored() == first
    assert len(first) == 2


async def test_a_batch_with_one_invalid_event_stores_nothing(
    hq: Any, stored: Any, es: httpx.Client, prefix: str
) -> None:
    valid = make_event()
    invalid = make_event(integer_properties={"processor_count": "four"})

    response = await hq.put_events([valid, invalid])

    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "INVALID_EVENTS"
    assert body["parameters"]["errors"] == [
        {
            "index": 1,
            "id": invalid["id"],
            "path": "$[1].integer-properties.processor_count",
            "message": "expected an integer within int32, found string 'four'",
        }
    ]
    assert stored() == []
    assert es.get(f"/{prefix}-*", params={"allow_no_indices": "true"}).json() == {}


async def test_dotted_property_names_do_not_collide(hq: Any, stored: Any) -> None:
    """`a`, `a.b` and `a.b.c` are three leaf properties, not objects inside each other."""
    event = make_event(
        double_properties={"cpu": 0.5, "cpu.user": 0.25, "cpu.user.nice": 0.125},
        string_properties={"disk.path": "/var"},
    )

    assert (await hq.put_events([event])).status_code == 202

    (found,) = stored({"range": {"double-properties.cpu.user": {"gt": 0.2, "lt": 0.3}}})
    assert found["double-properties"] == {"cpu": 0.5, "cpu.user": 0.25, "cpu.user.nice": 0.125}
    assert stored({"term": {"string-properties.disk.path": "/var"}}) == [found]


async def test_the_original_java_agents_array_format_is_accepted(hq: Any, stored: Any) -> None:
    """The Java agents send every value as an array and timestamps with milliseconds."""
    body = b"""[{"id": "java-1", "type": "jvm/statistics", "system": "host", "agent-id": "jvm/app",
        "timestamp": "2015-11-17T13:05:55.001Z", "pid": "parent-1", "gid": "run-7",
        "marker": "staging",
        "double-properties": {"system_cpu_load": [0.5]},
        "long-properties": {"heap_used": [123456789]},
        "boolean-properties": {"daemon": [true]},
        "date-properties": {"started": ["2015-11-17T13:00:00.000Z"]},
        "string-properties": {"tags": ["blue", "green"], "user_language": ["en"]}}]"""

    assert (await hq.put_events(body)).status_code == 202

    (event,) = stored({"term": {"string-properties.tags": "green"}})
    assert event["timestamp"] == "2015-11-17T13:05:55.001Z"
    assert event["double-properties"] == {"system_cpu_load": 0.5}
    assert event["long-properties"] == {"heap_used": 123456789}
    assert event["boolean-properties"] == {"daemon": True}
    assert event["date-properties"] == {"started": "2015-11-17T13:00:00.000Z"}
    assert event["string-properties"] == {"tags": ["blue", "green"], "user_language": "en"}
    assert (event["pid"], event["gid"], event["marker"]) == ("parent-1", "run-7", "staging")


async def test_timestamps_with_an_offset_are_stored_in_utc_and_indexed_by_their_utc_month(
    hq: Any, stored: Any, prefix: str
) -> None:
    event = make_event(timestamp="2015-05-31T23:30:00-02:00")

    assert (await hq.put_events([event])).status_code == 202

    (found,) = stored()
    assert found["timestamp"] == "2015-06-01T01:30:00.000Z"
    assert found["_index"] == f"{prefix}-development-2015.06"


async def test_two_spaces_stay_apart_even_with_the_same_event_ids(
    hq: Any, stored: Any, prefix: str
) -> None:
    """The space comes from the token only; the same id in two spaces is two events."""
    event = make_event(timestamp="2020-02-02T00:00:00Z")
    assert (await hq.put_events([event], token="development")).status_code == 202
    assert (await hq.put_events([event], token="second-of-b")).status_code == 202
    assert (await hq.put_events([event], token="token-of-b")).status_code == 202

    found = stored()

    assert sorted((e["space"], e["_index"]) for e in found) == [
        ("b", f"{prefix}-b-2020.02"),
        ("development", f"{prefix}-development-2020.02"),
    ]
    assert stored({"term": {"space": "b"}})[0]["id"] == event["id"]


async def test_an_event_cannot_choose_its_space(hq: Any, stored: Any) -> None:
    response = await hq.put_events([make_event(space="b")])

    assert response.status_code == 400
    assert response.json()["parameters"]["errors"][0]["message"] == (
        "unknown field 'space': the space is chosen by the space-token, not by the event"
    )
    assert stored() == []


async def test_a_very_long_string_value_is_stored(hq: Any, stored: Any) -> None:
    """Elasticsearch cannot index keyword terms over 32766 bytes; the event is kept anyway."""
    long_value = "é" * 30_000  # 60000 bytes in UTF-8
    event = make_event(string_properties={"stack": long_value, "short": "x"})

    assert (await hq.put_events([event])).status_code == 202

    (found,) = stored({"term": {"string-properties.short": "x"}})
    assert found["string-properties"]["stack"] == long_value


async def test_every_family_maps_to_its_field_type(hq: Any, es: httpx.Client, prefix: str) -> None:
    event = make_event(
        boolean_properties={"b": True},
        date_properties={"d": "2015-05-18T14:07:00+01:00"},
        double_properties={"x": 1.5},
        float_properties={"f": 2.5},
        integer_properties={"i": 3},
        long_properties={"l": 2**40},
        string_properties={"s": "text"},
    )

    assert (await hq.put_events([event])).status_code == 202

    mapping = es.get(f"/{prefix}-*/_mapping").json()
    (properties,) = (m["mappings"]["properties"] for m in mapping.values())
    types = {
        family: next(iter(fields["properties"].values()))["type"]
        for family, fields in properties.items()
        if family.endswith("-properties")
    }
    assert types == {
        "boolean-properties": "boolean",
        "date-properties": "date",
        "double-properties": "double",
        "float-properties": "float",
        "integer-properties": "integer",
        "long-properties": "long",
        "string-properties": "keyword",
    }


async def test_an_unreachable_elasticsearch_gets_503_with_retry_after(make_hq: Any) -> None:
    """Nothing listens on port 9; the agent is told to retry, never 202."""
    async with make_hq(es_url="http://127.0.0.1:9", es_retry_seconds=0.5) as hq:
        response = await hq.put_events([make_event()])

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["type"] == "STORE_UNAVAILABLE"
    assert set(body) == {"type", "message", "parameters"}


async def test_the_same_handler_answers_under_api(hq: Any, stored: Any) -> None:
    """The original Java agents send to /api/events."""
    response = await hq.put(
        "/api/events",
        content=orjson.dumps([make_event()]),
        headers={"logspace.space-token": "development"},
    )

    assert response.status_code == 202
    assert len(stored()) == 1
