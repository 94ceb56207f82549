"""The pure parts of time series, export, suggestions and agent activity: validation, request
building and answer shaping, without Elasticsearch."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from logspace.errors import InvalidParameter
from logspace.read import activity, export, suggestions, timeseries
from logspace.read.params import Params, parse_instant

pytestmark = pytest.mark.anyio

WINDOW = {"start": "2015-05-18T00:00:00Z", "end": "2015-05-19T00:00:00Z", "gap": 3600}
TYPES = {
    "boolean": "boolean-properties.b",
    "date": "date-properties.d",
    "double": "double-properties.x",
    "float": "float-properties.x",
    "integer": "integer-properties.x",
    "long": "long-properties.x",
    "string": "string-properties.s",
}
ALLOWED = {
    "boolean": {"count", "distinct-count"},
    "string": {"count", "distinct-count"},
    "date": {"count", "min", "max", "avg", "percentile", "distinct-count"},
    **{key: set(timeseries.AGGREGATES) for key in ("double", "float", "integer", "long")},
}


def series(**changes: Any) -> timeseries.TimeSeries:
    return timeseries.read_time_series(Params.from_body({**WINDOW, **changes}))


@pytest.mark.parametrize("field_type", sorted(TYPES))
@pytest.mark.parametrize("aggregate", timeseries.AGGREGATES)
def test_the_aggregate_must_fit_the_property_type(field_type: str, aggregate: str) -> None:
    definition: dict[str, Any] = {"property": TYPES[field_type], "aggregate": aggregate}
    if aggregate == "percentile":
        definition["percent"] = 95
    if aggregate in ALLOWED[field_type]:
        assert series(definitions=[definition]).definitions[0].aggregate == aggregate
        return
    with pytest.raises(InvalidParameter) as raised:
        series(definitions=[definition])
    assert raised.value.parameter == "definitions[0].aggregate"
    assert raised.value.parameters is not None
    assert raised.value.parameters["property-type"] == field_type
    assert set(raised.value.parameters["allowed-aggregates"]) == ALLOWED[field_type]


def test_buckets_are_counted_from_start_and_the_last_may_be_partial() -> None:
    assert series(definitions=[{}]).bucket_count == 24
    assert series(gap=7 * 3600, definitions=[{}]).bucket_count == 4
    assert series(gap=86400 * 2, definitions=[{}]).bucket_count == 1


@pytest.mark.parametrize(
    ("changes", "parameter", "reason"),
    [
        ({"end": WINDOW["start"]}, "end", "must be after 'start'"),
        ({"end": "2015-05-17T00:00:00Z"}, "end", "must be after 'start'"),
        ({"start": None}, "start", "is required"),
        ({"gap": 0}, "gap", "outside the allowed range"),
        ({"gap": 1}, "gap", "86400 buckets, more than 10000"),
        ({"gap": "1h"}, "gap", "expected an integer"),
        ({"definitions": []}, "definitions", "non-empty list"),
        ({"definitions": [{}] * 21}, "definitions", "more than 20"),
        ({"definitions": [{"aggregate": "median"}]}, "definitions[0].aggregate", "one of"),
        ({"definitions": [{"aggregate": "avg"}]}, "definitions[0].property", "is required"),
        (
            {"definitions": [{"property": "long-properties.x", "aggregate": "percentile"}]},
            "definitions[0].percent",
            "is required",
        ),
        (
            {
                "definitions": [
                    {"property": "long-properties.x", "aggregate": "percentile", "percent": 101}
                ]
            },
            "definitions[0].percent",
            "from 0 to 100",
        ),
        ({"definitions": [{"percent": 5}]}, "definitions[0].percent", "only goes with"),
        ({"definitions": [{"agent": "a"}]}, "definitions[0].agent", "unknown parameter"),
        (
            {"definitions": [{"where": {"field": "nope", "equals": 1}}]},
            "definitions[0].where.field",
            "unknown field",
        ),
        ({"steps": 5, "definitions": [{}]}, "steps", "unknown parameter"),
    ],
)
def test_a_bad_time_series_request_gets_a_400_naming_the_parameter(
    changes: dict[str, Any], parameter: str, reason: str
) -> None:
    with pytest.raises(InvalidParameter) as raised:
        series(**changes)

    assert raised.value.parameter == parameter
    assert reason in raised.value.reason


def test_a_too_fine_gap_names_the_bucket_counts() -> None:
    with pytest.raises(InvalidParameter) as raised:
        series(gap=1, definitions=[{}])
    assert raised.value.parameters is not None
    assert raised.value.parameters["requested-buckets"] == 86400
    assert raised.value.parameters["max-buckets"] == 10_000


def test_each_definition_is_one_search_with_buckets_from_start() -> None:
    wanted = series(
        start="2015-05-18T00:00:05Z",
        definitions=[{"agent-id": "os/cpu", "property": "double-properties.x", "aggregate": "avg"}],
    )
    (body,) = timeseries.bodies(wanted)
    histogram = body["aggs"]["series"]["date_histogram"]

    assert histogram["fixed_interval"] == "3600000ms"
    assert histogram["offset"] == "5000ms"
    assert histogram["min_doc_count"] == 0
    assert body["aggs"]["series"]["aggs"] == {"value": {"avg": {"field": "double-properties.x"}}}
    assert {"terms": {"agent-id": ["os/cpu"]}} in body["query"]["bool"]["filter"]


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(["start", "end", "gap", "definitions", "x"]),
        st.none()
        | st.integers(-5, 10**6)
        | st.text(max_size=8)
        | st.sampled_from(["2015-05-18T00:00:00Z", "2015-05-19T00:00:00Z"])
        | st.lists(
            st.dictionaries(
                st.sampled_from(
                    ["agent-id", "system", "property", "aggregate", "percent", "where"]
                ),
                st.none()
                | st.integers(-1, 200)
                | st.text(max_size=8)
                | st.sampled_from(list(TYPES.values()) + list(timeseries.AGGREGATES)),
            ),
            max_size=3,
        ),
    )
)
def test_no_time_series_request_gets_anything_but_series_or_a_400(body: dict[str, Any]) -> None:
    try:
        wanted = timeseries.read_time_series(Params.from_body(body))
    except InvalidParameter as error:
        assert error.status == 400
    else:
        assert len(timeseries.bodies(wanted)) == len(wanted.definitions)


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("cpu", "os/cpu", True),
        ("CPU", "os/cpu", True),
        ("os/c", "OS/CPU", True),
        ("used", "system_memory_used", True),
        ("pu", "os/cpu", False),
        ("memory", "os/mem", False),
        ("", "anything", True),
        ("a.b", "x-a.b", True),
        ("a.b", "xa.b", False),
        ("ä", "Äpfel", True),
    ],
)
def test_a_text_matches_the_start_of_a_name_or_of_a_word_ignoring_case(
    text: str, name: str, expected: bool
) -> None:
    assert suggestions.matches(text, name) is expected


def test_the_include_pattern_escapes_every_special_character() -> None:
    assert suggestions.include_pattern("a.*") == "(.*[^a-zA-Z0-9])?[aA]\\.\\*.*"
    assert suggestions.include_pattern("(1|@)") == "(.*[^a-zA-Z0-9])?\\(1\\|\\@\\).*"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (16490561536, "16490561536"),
        (0.44324237001029815, "0.44324237001029815"),
        (1e20, "1e+20"),
        (-0.5, "-0.5"),
        (["only"], "only"),
        (["blue", "green"], '["blue","green"]'),
        ("a;b", "a;b"),
    ],
)
def test_csv_cells_have_no_locale_formatting(value: Any, text: str) -> None:
    assert export.cell(value) == text


def hit(n: int, **fields: Any) -> dict[str, Any]:
    source = {
        "id": f"e{n}",
        "type": "t",
        "system": "s",
        "agent-id": "a",
        "timestamp": "2015-05-18T14:07:00.000Z",
        **fields,
    }
    return {"_source": source, "sort": [n, f"e{n}"]}


class Pages:
    """A fake store answering export pages from a list of hits, and counting the calls."""

    def __init__(self, hits: list[dict[str, Any]]) -> None:
        self.hits = hits
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        after = body.get("search_after", [-1])[0]
        rest = [h for h in self.hits if h["sort"][0] > after]
        return {"hits": {"hits": rest[: body["size"]]}}


async def run(wanted: export.Export, fetch: Pages, properties: list[str] = []) -> bytes:  # noqa: B006
    first = await fetch(wanted.page_body(0, None))
    return b"".join([chunk async for chunk in export.stream(wanted, first, fetch, properties)])


def read(parameters: dict[str, Any]) -> export.Export:
    return export.read_export(Params.from_body(parameters))


async def test_csv_has_a_header_with_the_property_columns_and_quotes_only_when_needed() -> None:
    fetch = Pages(
        [
            hit(1, **{"double-properties": {"load": 0.5}, "string-properties": {"s": 'a,"b"'}}),
            hit(2, marker="m\r\nx", **{"long-properties": {"n": 16490561536}}),
        ]
    )
    columns = ["double-properties.load", "long-properties.n", "string-properties.s"]

    text = (await run(read({"format": "csv"}), fetch, columns)).decode()

    assert text.split("\r\n")[0] == (
        "id,type,system,agent-id,timestamp,pid,gid,marker,"
        "double-properties.load,long-properties.n,string-properties.s"
    )
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[1][-3:] == ["0.5", "", 'a,"b"']
    assert rows[2][7] == "m\r\nx"
    assert rows[2][-2] == "16490561536"
    assert text.endswith("\r\n")


FORMULAS = ['=HYPERLINK("http://x")', "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx"]


async def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_escaped() -> None:
    """OWASP's advice: such text cells start with `'`; numbers (even negative) stay numbers."""
    fetch = Pages(
        [
            hit(
                n, marker=text, **{"string-properties": {"s": [text]}, "long-properties": {"n": -5}}
            )
            for n, text in enumerate(FORMULAS)
        ]
        + [hit(9, marker="a=b", **{"double-properties": {"d": -0.5}})]
    )
    columns = ["double-properties.d", "long-properties.n", "string-properties.s"]

    text = (await run(read({"format": "csv"}), fetch, columns)).decode()

    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert [row[7] for row in rows[1:]] == [*(f"'{f}" for f in FORMULAS), "a=b"]
    assert [row[10] for row in rows[1:]] == [*(f"'{f}" for f in FORMULAS), ""]
    assert [row[9] for row in rows[1:]] == ["-5"] * len(FORMULAS) + [""]
    assert rows[-1][8] == "-0.5"


async def test_csv_formulas_are_kept_as_they_are_when_asked_for() -> None:
    fetch = Pages([hit(1, marker="=1+2")])

    text = (await run(read({"format": "csv", "formulas": "keep"}), fetch)).decode()

    assert list(csv.reader(io.StringIO(text, newline="")))[1][7] == "=1+2"
    with pytest.raises(InvalidParameter, match="expected one of escape, keep"):
        read({"format": "csv", "formulas": "no"})


async def test_exports_are_fetched_page_by_page_until_the_limit() -> None:
    fetch = Pages([hit(n) for n in range(2500)])

    ndjson = await run(read({"format": "ndjson", "limit": 2100}), fetch)

    assert len(ndjson.splitlines()) == 2100
    assert [b["size"] for b in fetch.bodies] == [1000, 1000, 100]
    assert [b.get("search_after") for b in fetch.bodies] == [None, [999, "e999"], [1999, "e1999"]]


async def test_a_json_export_is_one_array_even_when_empty() -> None:
    assert await run(read({}), Pages([])) == b"[]"
    assert await run(read({}), Pages([hit(1), hit(2)])) == (
        b'[{"id":"e1","type":"t","system":"s","agent-id":"a","timestamp":"2015-05-18T14:07:00.000Z"},'
        b'{"id":"e2","type":"t","system":"s","agent-id":"a","timestamp":"2015-05-18T14:07:00.000Z"}]'
    )


def test_export_parameters_are_checked() -> None:
    with pytest.raises(InvalidParameter, match="expected one of json, ndjson, csv"):
        read({"format": "xml"})
    with pytest.raises(InvalidParameter, match="unknown parameter"):
        read({"size": 10})


NOW = parse_instant("2015-05-18T14:15:00Z", "now")


def test_the_activity_window_ends_now_in_steps_of_duration_over_steps() -> None:
    wanted = activity.read_activity(Params.from_query([("duration", "900"), ("steps", "7")]), NOW)

    assert wanted.end == NOW
    assert wanted.gap_millis == 128572
    assert wanted.start == NOW - 7 * 128572


@pytest.mark.parametrize(
    ("items", "parameter"),
    [
        ([("duration", "59")], "duration"),
        ([("duration", str(31 * 86400))], "duration"),
        ([("duration", "60"), ("steps", "61")], "steps"),
        ([("steps", "1001")], "steps"),
        ([("sort", "count")], "sort"),
        ([("size", "0")], "size"),
        ([("offset", "-1")], "offset"),
        ([("end", "now")], "end"),
    ],
)
def test_bad_activity_parameters_get_a_400(items: list[tuple[str, str]], parameter: str) -> None:
    with pytest.raises(InvalidParameter) as raised:
        activity.read_activity(Params.from_query(items), NOW)
    assert raised.value.parameter == parameter


def test_agents_sort_by_count_or_name_with_ties_in_name_order() -> None:
    """Ties are in order of system, then agent id, whichever way the sort goes (docs/api.md)."""
    a, b, c, d = (
        activity.Agent("h1", "os/cpu", 5),
        activity.Agent("h2", "os/cpu", 5),
        activity.Agent("h1", "jvm", 9),
        activity.Agent("h2", "jvm", 5),
    )
    agents = [b, d, a, c]
    assert activity.ordered(agents, "count:desc") == [c, a, d, b]
    assert activity.ordered(agents, "count:asc") == [a, d, b, c]
    assert activity.ordered(agents, "system:asc") == [c, a, d, b]
    assert activity.ordered(agents, "system:desc") == [d, b, c, a]
    assert activity.ordered(agents, "agent-id:asc") == [c, d, a, b]
    assert activity.ordered(agents, "agent-id:desc") == [a, b, c, d]


def test_histograms_are_split_so_no_search_has_too_many_buckets() -> None:
    wanted = activity.read_activity(
        Params.from_query([("steps", "1000"), ("duration", "3600")]), NOW
    )
    agents = [activity.Agent("h", str(i), 1) for i in range(25)]

    bodies = activity.history_bodies(wanted, agents)

    sizes = [len(b["aggs"]["agents"]["filters"]["filters"]) for b in bodies]
    assert sum(sizes) == 25
    assert max(sizes) * 1001 <= activity.BUCKETS_PER_SEARCH


query_items = st.lists(
    st.tuples(
        st.sampled_from(
            ["duration", "steps", "end", "sort", "offset", "size", "text", "agent-id", "system",
             "format", "delimiter", "limit", "where", "start", "order", "x"]
        ),
        st.text(max_size=20)
        | st.sampled_from(["60", "0001-01-01T00:00:00Z", "count:asc", "csv", "tab", "5", "-1"]),
    ),
    max_size=6,
)  # fmt: skip


@settings(max_examples=300)
@given(query_items)
@example([("duration", "²")])  # a digit to str.isdigit(), not to int()
def test_no_query_string_gets_anything_but_a_request_or_a_400(items: list[tuple[str, str]]) -> None:
    """Agent activity, suggestions and export: every input is read, or refused with a 400."""
    for read_request in (
        lambda p: activity.read_activity(p, NOW),
        suggestions.read_suggest,
        export.read_export,
    ):
        try:
            read_request(Params.from_query(items))
        except InvalidParameter as error:
            assert error.status == 400
