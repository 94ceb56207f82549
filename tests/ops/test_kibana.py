"""The Kibana saved objects: well formed, stable ids, fields that exist with the right types;
and `logspace kibana setup` against a scripted Kibana."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from logspace.ops import kibana
from logspace.settings import Settings
from logspace.spaces.grants import Grant

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = orjson.loads((ROOT / "index_templates" / "component-mappings.json").read_bytes())[
    "template"
]["mappings"]
NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}
# What each Lens operation needs of its field, and the column data type that goes with it.
OPERATIONS = {
    "date_histogram": ({"date"}, "date"),
    "terms": ({"keyword"}, "string"),
    "average": (NUMERIC, "number"),
    "sum": (NUMERIC, "number"),
    "min": (NUMERIC, "number"),
    "max": (NUMERIC, "number"),
    "median": (NUMERIC, "number"),
}
STABLE_IDS = [
    ("index-pattern", "logspace-events"),
    ("lens", "logspace-events-over-time"),
    ("lens", "logspace-top-systems"),
    ("lens", "logspace-top-agents"),
    ("lens", "logspace-os-cpu"),
    ("lens", "logspace-os-memory"),
    ("dashboard", "logspace-overview"),
]


def objects() -> list[dict[str, Any]]:
    lines = kibana.SAVED_OBJECTS.read_bytes().splitlines()
    return [orjson.loads(line) for line in lines if line.strip()]


def by_type(kind: str) -> list[dict[str, Any]]:
    return [entry for entry in objects() if entry["type"] == kind]


def mapped_type(field: str) -> str | None:
    """The field's type in the event indices: declared, or given by its family's dynamic
    template (property fields exist only once an event has them)."""
    declared = MAPPINGS["properties"].get(field)
    if declared is not None:
        return None if declared["type"] == "object" else str(declared["type"])
    for entry in MAPPINGS["dynamic_templates"]:
        (rule,) = entry.values()
        if fnmatch.fnmatchcase(field, rule["path_match"]):
            family = rule["path_match"].removesuffix(".*")
            assert MAPPINGS["properties"][family]["dynamic"] is True
            return str(rule["mapping"]["type"])
    return None


def lens_layers(lens: dict[str, Any]) -> dict[str, Any]:
    layers: dict[str, Any] = lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
    return layers


def lens_columns(lens: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for layer in lens_layers(lens).values():
        yield from layer["columns"].values()


def query_fields(query: str) -> list[str]:
    return re.findall(r"([\w.\-]+)\s*:", query)


# -- the file ----------------------------------------------------------------------


def test_every_line_is_a_saved_object_with_a_stable_id() -> None:
    """Ids never change: the import overwrites by id, and dashboards link by id."""
    found = objects()

    assert [(entry["type"], entry["id"]) for entry in found] == STABLE_IDS
    for entry in found:
        assert set(entry) >= {"type", "id", "attributes", "references"}
        assert entry["coreMigrationVersion"] == "8.8.0"
        assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", entry["typeMigrationVersion"])


def test_the_data_view_covers_the_event_indices_with_timestamp_as_time_field() -> None:
    (data_view,) = by_type("index-pattern")
    attributes = data_view["attributes"]

    assert attributes["title"] == "logspace-events-*"
    assert attributes["timeFieldName"] == "timestamp"
    assert mapped_type("timestamp") == "date"
    for field, fmt in orjson.loads(attributes["fieldFormatMap"]).items():
        assert fmt["id"] in ("bytes", "percent")
        assert mapped_type(field) in NUMERIC, field


def test_every_reference_points_to_an_object_in_the_file() -> None:
    present = {(entry["type"], entry["id"]) for entry in objects()}

    for entry in objects():
        for reference in entry["references"]:
            assert (reference["type"], reference["id"]) in present, (entry["id"], reference)


def test_every_field_a_visualisation_uses_exists_with_the_type_it_needs() -> None:
    checked = set()
    for lens in by_type("lens"):
        for column in lens_columns(lens):
            if column["operationType"] == "count":
                assert column["sourceField"] == "___records___"
                continue
            types, data_type = OPERATIONS[column["operationType"]]
            field = column["sourceField"]
            assert mapped_type(field) in types, (lens["id"], field, mapped_type(field))
            assert column["dataType"] == data_type, (lens["id"], field)
            checked.add(field)
        for field in query_fields(lens["attributes"]["state"]["query"]["query"]):
            assert mapped_type(field) == "keyword", (lens["id"], field)

    assert checked == {
        "timestamp",
        "type",
        "system",
        "agent-id",
        "double-properties.system_cpu_load",
        "long-properties.used_memory",
        "long-properties.total_memory",
    }


def test_every_lens_layer_is_complete_and_bound_to_the_data_view() -> None:
    for lens in by_type("lens"):
        state = lens["attributes"]["state"]
        references = {ref["name"]: ref["id"] for ref in lens["references"]}
        for layer_id, layer in lens_layers(lens).items():
            assert references[f"indexpattern-datasource-layer-{layer_id}"] == "logspace-events"
            assert sorted(layer["columnOrder"]) == sorted(layer["columns"])
            for column in layer["columns"].values():
                order_by = column.get("params", {}).get("orderBy", {})
                if order_by.get("type") == "column":
                    assert order_by["columnId"] in layer["columns"]
        for layer in state["visualization"]["layers"]:
            columns = lens_layers(lens)[layer["layerId"]]["columns"]
            used = [layer["xAccessor"], *layer["accessors"], layer.get("splitAccessor")]
            assert all(column in columns for column in used if column is not None), lens["id"]


def test_the_dashboard_shows_every_visualisation_once_without_overlaps() -> None:
    (dashboard,) = by_type("dashboard")
    panels = orjson.loads(dashboard["attributes"]["panelsJSON"])
    references = {ref["name"]: (ref["type"], ref["id"]) for ref in dashboard["references"]}

    shown = [references[f"{p['panelIndex']}:{p['panelRefName']}"] for p in panels]
    assert sorted(shown) == sorted((e["type"], e["id"]) for e in by_type("lens"))
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridData"]
        assert panel["panelRefName"] == f"panel_{panel['panelIndex']}"
        assert grid["i"] == panel["panelIndex"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 48
        columns = range(grid["x"], grid["x"] + grid["w"])
        rows = range(grid["y"], grid["y"] + grid["h"])
        area = {(x, y) for x in columns for y in rows}
        assert not cells & area, panel["panelIndex"]
        cells |= area
    assert dashboard["attributes"]["timeRestore"] is True


def test_load_points_the_data_view_at_the_configured_prefix() -> None:
    loaded = kibana.load("acme-events")

    (data_view,) = [entry for entry in loaded if entry["type"] == "index-pattern"]
    assert data_view["attributes"]["title"] == "acme-events-*"
    assert data_view["id"] == "logspace-events"
    assert [(e["type"], e["id"]) for e in loaded] == STABLE_IDS


@pytest.mark.anyio
async def test_the_dashboard_fields_have_those_types_in_a_real_index(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    """After the OS monitor's sample events, Elasticsearch itself reports every field the
    dashboard uses as aggregatable, with the type the visualisation needs."""
    seed = (ROOT / "tests" / "data" / "seed-request.json").read_bytes()
    assert (await hq.put_events(seed)).status_code == 202
    fields = sorted(
        {c["sourceField"] for lens in by_type("lens") for c in lens_columns(lens)}
        - {"___records___"}
    )

    response = es.get(f"/{prefix}-*/_field_caps", params={"fields": ",".join(fields)})

    caps = response.json()["fields"]
    for field in fields:
        ((es_type, cap),) = caps[field].items()
        assert es_type == mapped_type(field), field
        assert cap["aggregatable"] is True, field


# -- the import ------------------------------------------------------------------------

SETTINGS = Settings(space_tokens={"t": Grant("s")}, es_username="elastic", es_password="pw")


def kibana_answering(*answers: httpx.Response | Exception) -> tuple[Any, list[httpx.Request]]:
    requests: list[httpx.Request] = []
    pending = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), requests


def imported(objects: list[dict[str, Any]], overwrite: bool) -> httpx.Response:
    results = [{"type": e["type"], "id": e["id"], "overwrite": overwrite} for e in objects]
    return httpx.Response(
        200, json={"success": True, "successCount": len(results), "successResults": results}
    )


@pytest.mark.anyio
async def test_setup_imports_every_object_overwriting_by_id() -> None:
    objects = kibana.load("logspace-events")
    transport, requests = kibana_answering(imported(objects, overwrite=True))

    report = await kibana.import_objects(
        "http://kibana:5601/", objects, SETTINGS, transport=transport
    )

    (request,) = requests
    assert request.method == "POST"
    assert request.url.path == "/api/saved_objects/_import"
    assert request.url.params["overwrite"] == "true"
    assert request.headers["kbn-xsrf"]
    assert request.headers["authorization"] == httpx.BasicAuth("elastic", "pw")._auth_header
    body = request.read()
    assert b'name="file"; filename="logspace.ndjson"' in body
    assert kibana.ndjson(objects) in body
    assert report == [f"{kind} {id_}: overwritten" for kind, id_ in STABLE_IDS]


@pytest.mark.anyio
async def test_setup_waits_for_a_starting_kibana() -> None:
    objects = kibana.load("logspace-events")
    transport, requests = kibana_answering(
        httpx.ConnectError("refused"),
        httpx.Response(503, json={"message": "Kibana server is not ready yet"}),
        imported(objects, overwrite=False),
    )

    report = await kibana.import_objects(
        "http://kibana:5601", objects, SETTINGS, wait=30, transport=transport
    )

    assert len(requests) == 3
    assert report[0] == "index-pattern logspace-events: created"


@pytest.mark.anyio
async def test_setup_reports_objects_kibana_did_not_import() -> None:
    failure = {
        "success": False,
        "successCount": 0,
        "errors": [{"type": "dashboard", "id": "logspace-overview", "error": {"type": "conflict"}}],
    }
    transport, _ = kibana_answering(httpx.Response(200, json=failure))

    expected = 'dashboard logspace-overview: {"type":"conflict"}'
    with pytest.raises(kibana.KibanaError, match=re.escape(expected)):
        await kibana.import_objects("http://kibana:5601", [], SETTINGS, transport=transport)


@pytest.mark.anyio
async def test_setup_names_refused_credentials() -> None:
    transport, _ = kibana_answering(httpx.Response(401, json={"message": "unauthorized"}))

    with pytest.raises(kibana.KibanaError, match="Kibana refused the credentials"):
        await kibana.import_objects("http://kibana:5601", [], SETTINGS, transport=transport)


def test_setup_command_fails_clearly_without_a_kibana() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")}

    result = subprocess.run(
        [sys.executable, "-m", "logspace", "kibana", "setup", "--url", "http://127.0.0.1:9"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 1
    assert "Kibana at http://127.0.0.1:9 could not be reached (ConnectError)" in result.stderr
