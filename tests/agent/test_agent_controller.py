"""The agent controller follows HQ's orders: first against a scripted HQ (every answer, on
demand), then against a real `logspace serve` with order files, as a library and as
`logspace agent controller`."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from logspace.agent import AgentConfig, Controller, Cron, EventBuilder, MemorySink, Sender
from logspace.agent.builder import Event

from .test_agent_cli import HQProcess, agent_environ, reported, wait_for

EVERY_SECOND = "* * * * * ? *"


def order(*entries: tuple[str, str, str | None], commit: int | None = None) -> dict[str, Any]:
    agents = []
    for agent_id, trigger, parameter in entries:
        entry = {"id": agent_id, "trigger-type": trigger}
        if parameter is not None:
            entry["trigger-parameter"] = parameter
        agents.append(entry)
    body: dict[str, Any] = {"agent-orders": agents}
    if commit is not None:
        body["commit-max-seconds"] = commit
    return body


class Delivery(MemorySink):
    """A sender that keeps events in memory and notes the batch ages it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.config = AgentConfig(token="t0k3n", hq_url="http://hq", system="host1")
        self.ages: list[float | None] = []

    def set_batch_max_age(self, seconds: float | None) -> None:
        if not self.ages or self.ages[-1] != seconds:  # as a sender, which ignores no change
            self.ages.append(seconds)


class ScriptedHQ:
    """Answers a controller as HQ would, with the order it is given; notes every request."""

    def __init__(self) -> None:
        self.order: dict[str, Any] | bytes | None = None
        self.down = False
        self.capabilities_status = 200
        self.order_status: int | None = None
        self.requests: list[httpx.Request] = []
        self.uploads: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        self.requests.append(request)
        if request.method == "PUT":
            self.uploads.append(orjson.loads(request.content))
            return httpx.Response(self.capabilities_status, json={})
        if self.order_status is not None:
            return httpx.Response(self.order_status, json={"type": "X", "message": "no"})
        if self.order is None:
            return httpx.Response(404, json={"type": "ORDER_NOT_FOUND", "message": "none"})
        body = self.order if isinstance(self.order, bytes) else orjson.dumps(self.order)
        etag = self.etag()
        headers = {"etag": etag, "last-modified": "Tue, 17 Nov 2015 13:05:55 GMT"}
        if request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers=headers)
        return httpx.Response(200, content=body, headers=headers)

    def etag(self) -> str:
        body = self.order if isinstance(self.order, bytes) else orjson.dumps(self.order)
        return '"' + hashlib.sha256(body).hexdigest()[:8] + '"'

    @property
    def order_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "GET"]


class Agent:
    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id

    def collect(self) -> Iterable[Event]:
        return [EventBuilder("test/tick", self.agent_id).build()]


@pytest.fixture
def hq() -> ScriptedHQ:
    return ScriptedHQ()


def controller(
    hq: ScriptedHQ, delivery: Delivery | None = None, *agent_ids: str, **options: Any
) -> Controller:
    return Controller(
        delivery or Delivery(),
        "monitor",
        agents=[Agent(agent_id) for agent_id in agent_ids or ("os/cpu", "os/memory")],
        transport=httpx.MockTransport(hq),
        **options,
    )


def test_without_an_order_every_agent_is_off_as_in_the_original(hq: ScriptedHQ) -> None:
    control = controller(hq)
    gate = control.application("http/asgi")

    assert control.poll() == "no order"
    gate.send(EventBuilder("http/request", "http/asgi").build())

    assert control.scheduler.intervals == {}
    assert not control.enabled("os/cpu")
    assert control.sender.events == []  # type: ignore[attr-defined]


def test_unordered_on_runs_agents_every_default_interval_and_lets_applications_send(
    hq: ScriptedHQ,
) -> None:
    delivery = Delivery()
    control = controller(hq, delivery, unordered="on", default_interval=7.0)
    gate = control.application("http/asgi")
    hq.order = order(("os/cpu", "Off", None))

    assert control.poll() == "applied"
    gate.send(EventBuilder("http/request", "http/asgi").build())

    assert control.scheduler.intervals == {"os/memory": 7.0}
    assert [e["agent-id"] for e in delivery.events] == ["http/asgi"]


def test_an_order_schedules_agents_by_cron_and_turns_the_others_off(hq: ScriptedHQ) -> None:
    control = controller(hq, None, "os/cpu", "os/memory", "os/disk")
    hq.order = order(
        ("os/cpu", "scheduler", "0/10 * * * * ? *"),
        ("os/memory", "Off", None),
        ("os/swap", "Scheduler", EVERY_SECOND),  # not an agent of this controller
    )

    assert control.poll() == "applied"

    assert control.scheduler.intervals == {"os/cpu": Cron.parse("0/10 * * * * ? *")}
    assert control.enabled("os/cpu")
    assert not control.enabled("os/memory")
    assert not control.enabled("os/disk")


def test_the_order_is_asked_for_conditionally_and_304_changes_nothing(hq: ScriptedHQ) -> None:
    control = controller(hq)
    hq.order = order(("os/cpu", "Scheduler", EVERY_SECOND))
    control.poll()
    planned = control.scheduler.intervals

    assert control.poll() == "unchanged"

    first, second = hq.order_requests
    assert "if-none-match" not in first.headers
    assert second.headers["if-none-match"] == hq.etag()
    assert second.headers["if-modified-since"] == "Tue, 17 Nov 2015 13:05:55 GMT"
    assert second.headers["logspace.space-token"] == "t0k3n"
    assert str(second.url) == "http://hq/orders/monitor"
    assert control.scheduler.intervals == planned


def test_an_agent_whose_order_stays_keeps_its_turn_when_the_order_changes(
    hq: ScriptedHQ,
) -> None:
    control = controller(hq)
    hq.order = order(("os/cpu", "Scheduler", EVERY_SECOND))
    control.poll()
    entry = control.scheduler._entries["os/cpu"]
    hq.order = order(
        ("os/cpu", "Scheduler", EVERY_SECOND), ("os/memory", "Scheduler", "0 * * * * ?")
    )

    assert control.poll() == "applied"

    assert control.scheduler._entries["os/cpu"] is entry
    assert set(control.scheduler.intervals) == {"os/cpu", "os/memory"}


def capability(agent_id: str, trigger: str) -> dict[str, Any]:
    return {
        "id": agent_id,
        "type": agent_id,
        "trigger-types": ["Off", trigger],
        "property-descriptions": [],
    }


def test_capabilities_go_up_once_and_again_when_the_agents_change(hq: ScriptedHQ) -> None:
    control = controller(hq)
    control.poll()
    control.poll()
    control.application("log")
    control.poll()
    control.remove("os/memory")
    control.poll()

    assert [[a["id"] for a in up["agent-capabilities"]] for up in hq.uploads] == [
        ["os/cpu", "os/memory"],
        ["os/cpu", "os/memory", "log"],
        ["os/cpu", "log"],
    ]
    assert hq.uploads[1] == {
        "id": "monitor",
        "system": "host1",
        "agent-capabilities": [
            capability("os/cpu", "Scheduler"),
            capability("os/memory", "Scheduler"),
            capability("log", "Application"),
        ],
    }
    assert hq.requests[0].url.path == "/capabilities/monitor"


def test_a_refused_capabilities_upload_is_tried_again_the_next_round(
    hq: ScriptedHQ, caplog: pytest.LogCaptureFixture
) -> None:
    control = controller(hq)
    hq.capabilities_status = 403
    control.poll()
    hq.capabilities_status = 200
    control.poll()
    control.poll()

    assert len(hq.uploads) == 2
    assert "HQ at http://hq refuses the capabilities of controller monitor: HTTP 403" in caplog.text


def test_an_unreachable_hq_a_refusal_or_an_invalid_order_keep_the_order_in_force(
    hq: ScriptedHQ, caplog: pytest.LogCaptureFixture
) -> None:
    control = controller(hq)
    hq.order = order(("os/cpu", "Scheduler", EVERY_SECOND))
    control.poll()
    in_force = control.order

    hq.down = True
    assert control.poll() == "unreachable"
    hq.down = False
    hq.order_status = 403
    assert control.poll() == "refused"
    hq.order_status = None
    hq.order = {"agent-orders": [{"id": "os/cpu", "trigger-type": "Sometimes"}]}
    assert control.poll() == "invalid"

    assert control.order is in_force
    assert set(control.scheduler.intervals) == {"os/cpu"}
    assert "HQ at http://hq refuses the order of controller monitor: HTTP 403 X: no" in caplog.text
    assert 'found "Sometimes" at $.agent-orders[0].trigger-type' in caplog.text


def test_404_after_an_order_turns_every_agent_off_and_forgets_the_validators(
    hq: ScriptedHQ,
) -> None:
    control = controller(hq)
    hq.order = order(("os/cpu", "Scheduler", EVERY_SECOND))
    control.poll()
    hq.order = None

    assert control.poll() == "no order"
    hq.order = order(("os/cpu", "Scheduler", EVERY_SECOND))
    assert control.poll() == "applied"  # the same order again: asked for without validators

    assert "if-none-match" not in hq.order_requests[-1].headers
    assert set(control.scheduler.intervals) == {"os/cpu"}


def test_commit_max_seconds_becomes_the_batch_age_until_an_order_without_it(
    hq: ScriptedHQ,
) -> None:
    delivery = Delivery()
    control = controller(hq, delivery)
    hq.order = order(("os/cpu", "Off", None), commit=0)
    control.poll()
    hq.order = order(("os/cpu", "Off", None), commit=30)
    control.poll()
    hq.order = order(("os/cpu", "Off", None))
    control.poll()

    assert delivery.ages == [None, 0.0, 30.0, None]


def test_an_agent_added_later_follows_the_order_in_force(hq: ScriptedHQ) -> None:
    control = controller(hq, None, "os/cpu")
    hq.order = order(("os/disk", "Scheduler", "0 0 * * * ?"))
    control.poll()

    control.add(Agent("os/disk"))

    assert control.scheduler.intervals == {"os/disk": Cron.parse("0 0 * * * ?")}


def test_a_controller_id_must_be_one_hq_accepts() -> None:
    with pytest.raises(ValueError, match="is not a controller id"):
        Controller(Delivery(), "monitor/1")


# -- against a real HQ --------------------------------------------------------------------


@pytest.fixture
def orders_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "orders"
    (directory / "development").mkdir(parents=True)
    return directory


@pytest.fixture
def serve(es_url: str, prefix: str, orders_dir: Path) -> Iterator[HQProcess]:
    """`logspace serve` with an orders directory it reloads every 0.1 s."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")}
    environ.update(
        LOGSPACE_ES_URL=es_url,
        LOGSPACE_SPACE_TOKENS="development:development,development:writer:write,b:token-of-b",
        LOGSPACE_INDEX_PREFIX=prefix,
        LOGSPACE_CONTROL_INDEX=f"{prefix}.control",
        LOGSPACE_ORDERS_DIR=str(orders_dir),
        LOGSPACE_ORDERS_RELOAD_SECONDS="0.1",
    )
    hq = HQProcess(environ)
    hq.start()
    yield hq
    hq.kill()


def write_order(orders_dir: Path, body: Mapping[str, Any], space: str = "development") -> None:
    """Replace the order file at once (write, then rename), as an editor or deployment would."""
    path = orders_dir / space / "monitor.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(orjson.dumps(body))
    temporary.replace(path)


def poll_until(control: Controller, outcome: str) -> None:
    wait_for(lambda: control.poll() == outcome, seconds=60)


def test_a_library_controller_follows_order_files_on_a_real_hq(
    serve: HQProcess, orders_dir: Path, tmp_path: Path
) -> None:
    """Capabilities go up with a write-only token; the order appears, stays (304), changes to
    Off and goes; a controller of another space never sees it."""
    config = AgentConfig(token="writer", hq_url=serve.url, queue_dir=tmp_path / "q", system="h1")
    other_config = config.replace(token="token-of-b", queue_name="other")
    with Sender(config) as sender, Sender(other_config) as other_sender:
        control = Controller(sender, "monitor", agents=[Agent("os/cpu")])
        other = Controller(other_sender, "monitor", agents=[Agent("os/cpu")])

        assert control.poll() == "no order"
        listed = httpx.get(
            f"{serve.url}/capabilities", headers={"logspace.space-token": "development"}
        )
        assert [(e["id"], e["system"], e["space"]) for e in listed.json()["capabilities"]] == [
            ("monitor", "h1", "development")
        ]

        write_order(orders_dir, order(("os/cpu", "Scheduler", "0/10 * * * * ? *"), commit=1))
        poll_until(control, "applied")
        assert control.scheduler.intervals == {"os/cpu": Cron.parse("0/10 * * * * ? *")}
        assert sender.config.batch_max_age == 1.0
        assert control.poll() == "unchanged"
        assert other.poll() == "no order"

        write_order(orders_dir, order(("os/cpu", "Off", None)))
        poll_until(control, "applied")
        assert control.scheduler.intervals == {}
        # The file has no commit-max-seconds: HQ serves the original agents' default.
        assert sender.config.batch_max_age == 300.0

        (orders_dir / "development" / "monitor.json").unlink()
        poll_until(control, "no order")
        control.stop()
        other.stop()


def test_logspace_agent_controller_starts_an_agent_when_its_order_appears_and_stops_it_at_off(
    serve: HQProcess, orders_dir: Path, stored: Any, tmp_path: Path
) -> None:
    agent = subprocess.Popen(
        [sys.executable, "-m", "logspace", "agent", "controller", "--id", "monitor",
         "--agents", "cpu,memory", "--poll-interval", "0.2", "--token", "writer"],
        env=agent_environ(serve, tmp_path), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def capabilities() -> list[Any]:
            answer = httpx.get(
                f"{serve.url}/capabilities", headers={"logspace.space-token": "development"}
            )
            return list(answer.json()["capabilities"])

        wait_for(capabilities)
        uploaded = capabilities()[0]["agent-capabilities"]
        assert [a["id"] for a in uploaded] == ["os/cpu", "os/memory"]
        assert stored() == []  # no order: off

        write_order(orders_dir, order(("os/cpu", "Scheduler", EVERY_SECOND), commit=0))
        wait_for(lambda: len(stored({"term": {"type": "os/cpu"}})) >= 2)
        assert stored({"term": {"type": "os/memory"}}) == []

        # One change: cpu Off, memory on. Memory's events show the change was followed.
        write_order(
            orders_dir,
            order(("os/cpu", "Off", None), ("os/memory", "Scheduler", EVERY_SECOND), commit=0),
        )
        wait_for(lambda: len(stored({"term": {"type": "os/memory"}})) >= 2)
        cpu_after_off = stored({"term": {"type": "os/cpu"}})
        wait_for(lambda: len(stored({"term": {"type": "os/memory"}})) >= 5)
        assert stored({"term": {"type": "os/cpu"}}) == cpu_after_off
        first_memory = stored({"term": {"type": "os/memory"}})[0]["timestamp"]
        assert max(e["timestamp"] for e in cpu_after_off) < first_memory
    finally:
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=60)

    assert agent.returncode == 0, stderr
    assert reported(stderr) == {"sent": len(stored()), "dropped": 0, "queued": 0}
    assert "controller monitor follows its order: os/cpu Scheduler" in stderr
    assert (tmp_path / "controller-monitor.sqlite3").exists()


def test_logspace_agent_controller_refuses_a_bad_id_or_time_zone(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")}
    base = [sys.executable, "-m", "logspace", "agent", "controller", "--token", "t",
            "--queue-dir", str(tmp_path)]  # fmt: skip

    bad_id = subprocess.run(
        [*base, "--id", "a/b"], env=environ, capture_output=True, text=True, timeout=60
    )
    bad_zone = subprocess.run(
        [*base, "--id", "monitor", "--time-zone", "Mars/Olympus"],
        env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert bad_id.returncode == 2
    assert "--id 'a/b' is not a controller id" in bad_id.stderr
    assert bad_zone.returncode == 2
    assert "--time-zone 'Mars/Olympus' is not a known time zone" in bad_zone.stderr
