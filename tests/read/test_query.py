"""The query builder, pure: request parameters -> Elasticsearch query DSL, or a 400 naming the
parameter. No input ever gets anything else."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logspace.errors import InvalidParameter
from logspace.read.params import Params, format_instant, parse_instant
from logspace.read.query import EventFilter, parse_condition
from logspace.read.search import encode_cursor, fingerprint, read_search


def where(condition: Any) -> dict[str, Any]:
    return parse_condition(condition, "where")


def test_each_comparison_becomes_a_structured_query() -> None:
    assert where({"field": "type", "equals": "os/cpu"}) == {"term": {"type": "os/cpu"}}
    assert where({"field": "integer-properties.n", "one-of": [1, 2]}) == {
        "terms": {"integer-properties.n": [1, 2]}
    }
    assert where({"field": "double-properties.load", "range": {"gte": 0.5, "lt": 1}}) == {
        "range": {"double-properties.load": {"gte": 0.5, "lt": 1}}
    }
    assert where({"field": "marker", "exists": True}) == {"exists": {"field": "marker"}}
    assert where({"field": "marker", "exists": False}) == {
        "bool": {"must_not": [{"exists": {"field": "marker"}}]}
    }


def test_and_or_not_nest() -> None:
    a = {"field": "system", "equals": "a"}
    b = {"field": "system", "equals": "b"}
    assert where({"or": [a, {"not": b}]}) == {
        "bool": {
            "should": [
                {"term": {"system": "a"}},
                {"bool": {"must_not": [{"term": {"system": "b"}}]}},
            ],
            "minimum_should_match": 1,
        }
    }
    assert where({"and": [a, b]}) == {
        "bool": {"filter": [{"term": {"system": "a"}}, {"term": {"system": "b"}}]}
    }


def test_values_that_look_like_query_syntax_stay_values() -> None:
    """Nothing is parsed as query syntax: the value is one term, quotes, stars and all."""
    value = 'x" OR space:* AND (type:"y'
    assert where({"field": "string-properties.s", "equals": value}) == {
        "term": {"string-properties.s": value}
    }


def test_dates_are_normalised_to_utc_milliseconds() -> None:
    condition = {"field": "timestamp", "range": {"gte": "2015-05-18T16:07:00+02:00"}}
    assert where(condition) == {"range": {"timestamp": {"gte": "2015-05-18T14:07:00.000Z"}}}


def test_a_property_name_with_a_star_is_not_a_wildcard() -> None:
    """`exists` would expand `*`; an open range on the one field does not."""
    assert where({"field": "long-properties.a*", "exists": True}) == {
        "range": {"long-properties.a*": {}}
    }


@pytest.mark.parametrize(
    ("condition", "parameter", "reason"),
    [
        ({"field": "colour", "equals": "x"}, "where.field", "unknown field 'colour'"),
        ({"field": "space", "equals": "x"}, "where.field", "unknown field 'space'"),
        ({"equals": "x"}, "where.field", "is required"),
        ({"field": "type", "equal": "x"}, "where.equal", "unknown parameter"),
        ({"field": "type"}, "where", "expected exactly one of"),
        ({"field": "type", "equals": "a", "one-of": ["b"]}, "where", "found 2"),
        ({"field": "type", "equals": 5}, "where.equals", "expected a string, found number 5"),
        (
            {"field": "integer-properties.n", "equals": 2.5},
            "where.equals",
            "expected an integer within int32",
        ),
        (
            {"field": "integer-properties.n", "range": {"gte": 2**31}},
            "where.range.gte",
            "within int32",
        ),
        ({"field": "long-properties.n", "equals": "5"}, "where.equals", "within int64"),
        ({"field": "float-properties.f", "equals": 1e39}, "where.equals", "float32"),
        ({"field": "double-properties.d", "equals": True}, "where.equals", "finite number"),
        ({"field": "boolean-properties.b", "equals": "true"}, "where.equals", "true or false"),
        ({"field": "boolean-properties.b", "range": {"gt": False}}, "where.range", "no range"),
        ({"field": "date-properties.d", "equals": "2015-05-18"}, "where.equals", "no UTC offset"),
        ({"field": "timestamp", "equals": "yesterday"}, "where.equals", "ISO-8601"),
        (
            {"field": "timestamp", "equals": "2015-05-18T14:07:00.000123Z"},
            "where.equals",
            "more precise than milliseconds",
        ),
        ({"field": "type", "one-of": []}, "where.one-of", "non-empty list"),
        ({"field": "type", "one-of": ["a", 1]}, "where.one-of[1]", "expected a string"),
        ({"field": "type", "range": {}}, "where.range", "at least one of"),
        ({"field": "type", "range": {"gt": "a", "gte": "b"}}, "where.range", "not both"),
        ({"field": "type", "range": {"from": "a"}}, "where.range.from", "unknown parameter"),
        ({"field": "type", "exists": "yes"}, "where.exists", "true or false"),
        ({"field": "double-properties..x", "exists": True}, "where.field", "empty part"),
        ({"field": "double-properties.", "exists": True}, "where.field", "must not be empty"),
        ({"and": []}, "where.and", "non-empty list"),
        ({"or": {"field": "type"}}, "where.or", "non-empty list"),
        ({"and": [{"field": "type", "equals": "a"}], "or": []}, "where.or", "not allowed beside"),
        ({"and": [{"not": 5}]}, "where.and[0].not", "expected a condition object"),
        ([], "where", "expected a condition object"),
    ],
)
def test_a_bad_condition_gets_a_400_naming_the_parameter(
    condition: Any, parameter: str, reason: str
) -> None:
    with pytest.raises(InvalidParameter) as raised:
        where(condition)

    assert raised.value.status == 400
    assert raised.value.parameter == parameter
    assert reason in raised.value.reason


def test_conditions_are_bounded_in_depth_and_number() -> None:
    deep: Any = {"field": "type", "equals": "a"}
    for _ in range(20):
        deep = {"not": deep}
    with pytest.raises(InvalidParameter, match="nest deeper"):
        where(deep)
    many = {"or": [{"field": "type", "equals": str(i)} for i in range(300)]}
    with pytest.raises(InvalidParameter, match="more than 256 conditions"):
        where(many)


def test_query_string_parameters_are_converted_and_checked() -> None:
    params = Params.from_query(
        [
            ("type", "os/cpu"),
            ("type", "os/memory"),
            ("start", "2015-05-18T00:00:00Z"),
            ("size", "5"),
            ("where", '{"field": "system", "equals": "h"}'),
        ]
    )
    search = read_search(params)

    assert search.size == 5
    assert search.filter == EventFilter(
        start=parse_instant("2015-05-18T00:00:00Z", "start"),
        types=("os/cpu", "os/memory"),
        where={"term": {"system": "h"}},
    )


@pytest.mark.parametrize(
    ("items", "parameter", "reason"),
    [
        ([("size", "ten")], "size", "expected an integer"),
        ([("size", "1001")], "size", "outside the allowed range 0 to 1000"),
        ([("size", "1"), ("size", "2")], "size", "given more than once"),
        ([("order", "up")], "order", "expected one of asc, desc"),
        ([("sort", "asc")], "sort", "unknown parameter"),
        ([("end", "2015-01-01T00:00:00Z"), ("start", "2015-01-01T00:00:00Z")], "end", "after"),
        ([("cursor", "not-a-cursor")], "cursor", "not a cursor"),
        ([("where", "[1,")], "where", "not valid JSON"),
    ],
)
def test_bad_search_parameters_get_a_400_naming_them(
    items: list[tuple[str, str]], parameter: str, reason: str
) -> None:
    with pytest.raises(InvalidParameter) as raised:
        read_search(Params.from_query(items))

    assert raised.value.parameter == parameter
    assert reason in raised.value.reason


def test_a_json_body_must_have_json_types() -> None:
    """In a body `"5"` is a string, not the number a query string would mean."""
    with pytest.raises(InvalidParameter, match="expected an integer"):
        read_search(Params.from_body({"size": "5"}))
    assert read_search(Params.from_body({"size": 5})).size == 5


def test_a_parameter_in_both_query_and_body_is_refused() -> None:
    query = Params.from_query([("size", "5")])
    with pytest.raises(InvalidParameter, match="both in the query string and in the body"):
        Params.from_body({"size": 6}, query=query)


def test_a_cursor_only_fits_its_own_query() -> None:
    mine = EventFilter(types=("a",))
    cursor = encode_cursor([1431958020000, "id-1"], fingerprint(mine, "asc"))

    search = read_search(Params.from_body({"type": "a", "cursor": cursor}))
    assert search.after == (1431958020000, "id-1")
    with pytest.raises(InvalidParameter, match="belongs to another query"):
        read_search(Params.from_body({"type": "b", "cursor": cursor}))
    with pytest.raises(InvalidParameter, match="belongs to another query"):
        read_search(Params.from_body({"type": "a", "order": "desc", "cursor": cursor}))


def test_instants_round_trip_through_epoch_milliseconds() -> None:
    for text in (
        "1969-12-31T23:59:59.999Z",
        "2015-05-18T14:07:00.001Z",
        "9999-12-31T23:59:59.999Z",
    ):
        assert format_instant(parse_instant(text, "t")) == text


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["type", "timestamp", "2015-05-18T14:07:00Z", "double-properties.x", "string-properties.s"]
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "field",
                    "equals",
                    "one-of",
                    "range",
                    "exists",
                    "and",
                    "or",
                    "not",
                    "gte",
                    "lt",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=500)
@given(json_values)
def test_no_condition_gets_anything_but_a_query_or_a_400(condition: Any) -> None:
    try:
        query = where(condition)
    except InvalidParameter as error:
        assert error.status == 400
        assert error.parameter.startswith("where")
    else:
        assert isinstance(query, dict)
        orjson.dumps(query)


@settings(max_examples=500)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "start",
                    "end",
                    "type",
                    "system",
                    "agent-id",
                    "where",
                    "order",
                    "size",
                    "cursor",
                    "x",
                ]
            ),
            st.text(max_size=30) | st.sampled_from(["2015-05-18T14:07:00Z", "10", "desc", "{}"]),
        ),
        max_size=6,
    )
)
def test_no_query_string_gets_anything_but_a_search_or_a_400(items: list[tuple[str, str]]) -> None:
    try:
        read_search(Params.from_query(items))
    except InvalidParameter as error:
        assert error.status == 400


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_instant_outside_the_calendar_in_utc_gets_a_400(text: str) -> None:
    with pytest.raises(InvalidParameter, match="outside the years 1 to 9999"):
        parse_instant(text, "start")
