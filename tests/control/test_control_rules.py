"""The pure rules of central control: what an order and a capabilities upload may say, every
refusal with its JSON path, conditional GETs, and the settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logspace.control import capabilities
from logspace.control.orderbook import Served
from logspace.control.routes import not_modified
from logspace.errors import InvalidCapabilities, InvalidControllerId, InvalidJson
from logspace.orders import AgentOrder, InvalidOrder, Order, parse_order, read_order
from logspace.settings import Settings, SettingsError

NOW = datetime(2015, 11, 17, 13, 5, 55, tzinfo=UTC)
TEN = "0/10 * * * * ? *"


def problems(order: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidOrder) as raised:
        read_order(order, now=NOW)
    return [(p.path, p.message) for p in raised.value.problems]


def test_an_order_in_the_original_format_is_read_in_any_case() -> None:
    order = parse_order(
        orjson.dumps(
            {
                "agent-orders": [
                    {"id": "os/cpu", "trigger-type": "SCHEDULER", "trigger-parameter": TEN},
                    {"id": "http/asgi", "trigger-type": "application"},
                    {"id": "os/disk", "trigger-type": "Off", "trigger-parameter": "ignored"},
                ],
                "commit-max-seconds": 0,
            }
        ),
        now=NOW,
    )

    cpu = order.get("os/cpu")
    assert cpu is not None
    assert cpu.trigger == "Scheduler"
    assert cpu.schedule is not None
    assert str(cpu.schedule) == TEN
    assert order.get("http/asgi") == AgentOrder("http/asgi", "Application")
    assert order.get("os/swap") is None
    assert order.commit_max_seconds == 0
    assert order.to_json()["agent-orders"][2] == {
        "id": "os/disk",
        "trigger-type": "Off",
        "trigger-parameter": "ignored",
    }


def test_commit_max_seconds_is_optional_and_an_empty_order_is_valid() -> None:
    order = read_order({"agent-orders": []}, now=NOW)

    assert order == Order((), None)
    assert order.encode() == b'{"agent-orders":[]}'


WHOLE_SECONDS = "expected a whole number of seconds from 0 to 86400, found"


def agents(*entries: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"agent-orders": list(entries), **fields}


def scheduled(parameter: Any) -> dict[str, Any]:
    return {"id": "a", "trigger-type": "Scheduler", "trigger-parameter": parameter}


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ([], [("$", "expected an object, found a list")]),
        ({"agent-orders": None}, [("$.agent-orders", "expected a list, found null")]),
        ({"agent-orders": {}}, [("$.agent-orders", "expected a list, found an object")]),
        (agents(**{"commit-max-second": 5}),
         [("$.commit-max-second",
           "unknown field; known: agent-orders, commit-max-seconds, commit-max-count")]),
        ({"agent-orders": [7]}, [("$.agent-orders[0]", "expected an object, found a number")]),
        (agents({"trigger-type": "Off"}),
         [("$.agent-orders[0].id", "expected the agent id, a text of 1 to 255 characters")]),
        (agents({"id": "a"}),
         [("$.agent-orders[0].trigger-type",
           "expected one of Application, Scheduler, Off, found null")]),
        (agents({"id": "a", "trigger-type": "Scheduler"}),
         [("$.agent-orders[0].trigger-parameter",
           "a Scheduler order needs a cron expression, e.g. '0/10 * * * * ? *'")]),
        (agents(scheduled("*/5 * * * *")),
         [("$.agent-orders[0].trigger-parameter", "not a cron expression: expected 6 or 7 fields "
           "(second minute hour day-of-month month day-of-week [year]), found 5")]),
        (agents(scheduled(10)),
         [("$.agent-orders[0].trigger-parameter", "expected a text, found a number")]),
        (agents(scheduled("0 0 0 1 1 ? 2014")),
         [("$.agent-orders[0].trigger-parameter",
           "the schedule '0 0 0 1 1 ? 2014' never fires again")]),
        (agents({"id": "a", "trigger-type": "Off", "every": 5}),
         [("$.agent-orders[0].every",
           "unknown field; known: id, trigger-type, trigger-parameter")]),
        (agents({"id": "a", "trigger-type": "Off"}, {"id": "a", "trigger-type": "Off"}),
         [("$.agent-orders[1].id", "agent 'a' has an order already")]),
        (agents(**{"commit-max-seconds": True}),
         [("$.commit-max-seconds", f"{WHOLE_SECONDS} true")]),
        (agents(**{"commit-max-seconds": 2.5}), [("$.commit-max-seconds", f"{WHOLE_SECONDS} 2.5")]),
        (agents(**{"commit-max-count": "1000"}),
         [("$.commit-max-count", 'expected a whole number, found "1000"')]),
        (agents(**{"commit-max-seconds": 86401}),
         [("$.commit-max-seconds", f"{WHOLE_SECONDS} 86401")]),
        (agents({"id": " ", "trigger-type": "Never"}, **{"commit-max-seconds": -1}),
         [("$.agent-orders[0].id", "expected the agent id, a text of 1 to 255 characters"),
          ("$.agent-orders[0].trigger-type",
           'expected one of Application, Scheduler, Off, found "Never"'),
          ("$.commit-max-seconds", f"{WHOLE_SECONDS} -1")]),
    ],
)  # fmt: skip
def test_invalid_orders_name_every_problem_by_its_path(
    order: Any, expected: list[tuple[str, str]]
) -> None:
    assert problems(order) == expected


def test_an_order_that_is_not_json_is_one_problem_at_the_root() -> None:
    with pytest.raises(InvalidOrder) as raised:
        parse_order(b'{"agent-orders": [', now=NOW)

    assert str(raised.value).startswith("invalid order: not valid JSON: ")
    assert raised.value.problems[0].path == "$"


agent_ids = st.text(min_size=1, max_size=20).filter(str.strip)
orders = st.builds(
    Order,
    st.lists(
        st.one_of(
            st.builds(AgentOrder, agent_ids, st.sampled_from(["Application", "Off"])),
            st.builds(lambda agent_id: AgentOrder(agent_id, "Scheduler", TEN), agent_ids),
        ),
        max_size=5,
        unique_by=lambda a: a.agent_id,
    ).map(tuple),
    st.one_of(st.none(), st.integers(0, 86400)),
)


@given(orders)
def test_an_order_written_as_json_reads_back_the_same(order: Order) -> None:
    again = parse_order(order.encode(), now=NOW)

    assert again.to_json() == order.to_json()
    assert list(again.to_json()) == ["agent-orders", "commit-max-seconds"][: len(again.to_json())]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_any_json_is_an_order_or_an_invalid_order(value: Any) -> None:
    try:
        read_order(value, now=NOW)
    except InvalidOrder as invalid:
        assert invalid.problems


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.just("monitor"), json_values),
            "system": json_values,
            "space": json_values,
            "agent-capabilities": st.one_of(json_values, st.lists(json_values)),
        },
    )
)
def test_any_capabilities_document_is_taken_or_refused_with_a_400(value: Any) -> None:
    try:
        parsed = capabilities.parse(orjson.dumps(value), "monitor")
    except (InvalidCapabilities, InvalidControllerId) as error:
        assert error.status == 400
    else:
        assert parsed.controller_id == "monitor"


def test_uploaded_capabilities_are_stored_under_space_controller_and_system() -> None:
    body = {
        "id": "monitor",
        "system": "host1",
        "space": "other",
        "agent-capabilities": [{"id": "os/cpu", "trigger-types": ["scheduler", "OFF", "Off"]}],
    }
    parsed = capabilities.parse(orjson.dumps(body), "monitor")

    document_id, source = capabilities.document("b", parsed, NOW)
    other_system, _ = capabilities.document(
        "b", capabilities.Capabilities("monitor", "host2", ()), NOW
    )
    other_space, _ = capabilities.document("c", parsed, NOW)

    assert len({document_id, other_system, other_space}) == 3
    assert source == {
        "kind": "capabilities",
        "space": "b",
        "controller-id": "monitor",
        "system": "host1",
        "agent-ids": ["os/cpu"],
        "updated": "2015-11-17T13:05:55.000Z",
        "capabilities": {
            "id": "monitor",
            "system": "host1",
            "space": "b",
            "agent-capabilities": [
                {"id": "os/cpu", "trigger-types": ["Scheduler", "Off"], "property-descriptions": []}
            ],
        },
    }


def test_capabilities_that_are_not_json_or_of_a_bad_id_are_refused() -> None:
    with pytest.raises(InvalidJson):
        capabilities.parse(b"[", "monitor")
    with pytest.raises(InvalidControllerId):
        capabilities.parse(b"{}", "../etc")
    with pytest.raises(InvalidControllerId):
        capabilities.parse(b"{}", "x" * 129)


# -- conditional GET ----------------------------------------------------------------------

SERVED = Served(
    "b",
    "monitor",
    Order(),
    "b/monitor.json",
    datetime(2015, 11, 17, 13, 5, 55, tzinfo=UTC),
    b'{"agent-orders":[]}',
    '"abc"',
)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, False),
        ({"if-modified-since": "Tue, 17 Nov 2015 13:05:55 GMT"}, True),
        ({"if-modified-since": "Tue, 17 Nov 2015 14:05:55 +0100"}, True),
        ({"if-modified-since": "Tue, 17 Nov 2015 13:05:54 GMT"}, False),
        ({"if-modified-since": "Wed, 18 Nov 2015 00:00:00 GMT"}, True),
        ({"if-modified-since": "not a date"}, False),
        ({"if-none-match": '"abc"'}, True),
        ({"if-none-match": 'W/"abc"'}, True),
        ({"if-none-match": '"x", "abc"'}, True),
        ({"if-none-match": "*"}, True),
        ({"if-none-match": '"x"', "if-modified-since": "Wed, 18 Nov 2015 00:00:00 GMT"}, False),
    ],
)
def test_a_conditional_get_is_not_modified_when(headers: dict[str, str], expected: bool) -> None:
    assert not_modified(headers, SERVED) is expected


# -- settings -------------------------------------------------------------------------------

TOKENS = {"LOGSPACE_SPACE_TOKENS": "development:development"}


def test_control_settings_have_defaults_outside_the_event_indices() -> None:
    settings = Settings.from_env(TOKENS)

    assert settings.control_index == "logspace-control"
    assert not settings.control_index.startswith(f"{settings.index_prefix}-")
    assert settings.orders_dir is None
    assert settings.orders_reload_seconds == 5.0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LOGSPACE_CONTROL_INDEX": "logspace-events-control"},
         "LOGSPACE_CONTROL_INDEX='logspace-events-control' must not start with 'logspace-events-'"),
        ({"LOGSPACE_INDEX_PREFIX": "logspace", "LOGSPACE_CONTROL_INDEX": "logspace-control"},
         "LOGSPACE_CONTROL_INDEX='logspace-control' must not start with 'logspace-'"),
        ({"LOGSPACE_CONTROL_INDEX": "Control"}, "LOGSPACE_CONTROL_INDEX='Control' is not a valid"),
        ({"LOGSPACE_ORDERS_RELOAD_SECONDS": "0"},
         "LOGSPACE_ORDERS_RELOAD_SECONDS='0' must be greater than zero"),
    ],
)  # fmt: skip
def test_invalid_control_settings_name_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**TOKENS, **environ})

    assert str(raised.value).startswith(message)


def test_capabilities_of_a_controller_without_agents_leave_the_list_out() -> None:
    """As the original's serializer writes them when no agent is registered."""
    uploaded = capabilities.parse(b'{"id":"monitor","system":"host1"}', "monitor")

    assert uploaded.agents == ()
    assert uploaded.to_json("development")["agent-capabilities"] == []
