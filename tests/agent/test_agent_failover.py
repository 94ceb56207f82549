"""Several HQs: an agent sends to one, stays with it while it answers, and when it cannot be
reached or fails, sends the same batch to the next at once; it backs off only once every HQ
failed in a row. Nothing queued is lost or stored twice (see also tests/elastic/test_cluster.py
for two real HQ processes, one killed)."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from logspace.agent import AgentConfig, AgentConfigError, Sender
from logspace.agent.cli import main
from logspace.agent.controller import Controller
from logspace.testing import make_event

from ..agent_support import unused_port
from .test_agent_controller import Delivery, order
from .test_agent_controller import ScriptedHQ as OrderHQ
from .test_agent_shipper import Rig, ids

A, B, C = "http://a.test", "http://b.test", "http://c.test"


# -- configuration ------------------------------------------------------------------------


def test_several_hq_urls_from_code_the_environment_a_file_and_flags(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(f'token = "t"\nhq_url = ["{A}", "{B}/"]\n')

    in_code = AgentConfig(token="t", hq_url=[A, B])
    from_env = AgentConfig.from_env(
        {"LOGSPACE_AGENT_TOKEN": "t", "LOGSPACE_AGENT_HQ_URL": f"{A}, {B}"}
    )
    from_file = AgentConfig.from_file(file)
    from_flag = AgentConfig.from_env({"LOGSPACE_AGENT_TOKEN": "t"}, hq_url=f"{C},{A}")

    assert in_code.hq_urls == from_env.hq_urls == from_file.hq_urls == [A, B]
    assert from_flag.hq_urls == [C, A]
    assert AgentConfig(token="t").hq_urls == ["http://127.0.0.1:4567"]


def test_a_bad_url_among_several_is_named() -> None:
    with pytest.raises(
        AgentConfigError, match=re.escape("LOGSPACE_AGENT_HQ_URL='b.test' is not an http")
    ):
        AgentConfig.from_env({"LOGSPACE_AGENT_TOKEN": "t", "LOGSPACE_AGENT_HQ_URL": f"{A},b.test"})
    with pytest.raises(AgentConfigError, match="hq_url=' ' names no URL"):
        AgentConfig(token="t", hq_url=" ")


def test_the_cli_takes_hq_url_repeated_or_comma_separated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """One round of the OS monitor with three HQs that refuse connections (ports nobody
    listens on): the agent tries each in turn, then keeps its events queued; a bad URL is
    refused."""
    a, b, c = (f"http://127.0.0.1:{unused_port()}" for _ in range(3))
    arguments = ["os", "--cycles", "1", "--token", "t", "--queue-dir", str(tmp_path)]
    environ = {"LOGSPACE_AGENT_SHUTDOWN_TIMEOUT": "1"}

    ran = main([*arguments, "--hq-url", f"{a},{b}", "--hq-url", c], environ)
    refused = main([*arguments, "--hq-url", f"{a},{b}", "--hq-url", "bad"], environ)

    assert (ran, refused) == (0, 2)
    assert f"trying HQ at {b}" in caplog.text
    assert f"trying HQ at {c}" in caplog.text
    errors = capsys.readouterr().err
    assert "logspace agent: sent 0, dropped 0, queued" in errors
    assert "--hq-url='bad' is not an http(s) URL" in errors


# -- the shipper, answer by answer ----------------------------------------------------------


def test_a_batch_goes_to_the_next_hq_at_once_when_one_cannot_be_reached() -> None:
    rig = Rig(hq_url=[A, B, C], batch_max_age=0.0)
    sent = rig.put(3)

    first = rig.attempt()
    rig.shipper.failed(first, "ConnectError")
    second = rig.attempt()  # no wait: the same batch, to B
    rig.shipper.answered(second, 202, {}, b"")
    rig.put(1)
    third = rig.attempt()

    assert (first.url, second.url, third.url) == (f"{A}/events", f"{B}/events", f"{B}/events")
    assert ids(first) == ids(second) == sent
    assert rig.shipper.failures == 0
    assert len(rig.queue) == 1  # the fourth event, in `third`


@pytest.mark.parametrize("status", [503, 500, 429, 403])
def test_an_hq_that_answers_with_a_failure_is_passed_over_too(status: int) -> None:
    rig = Rig(hq_url=[A, B], batch_max_age=0.0)
    rig.put(2)

    first = rig.answer(status, {"type": "X", "message": "m"})
    second = rig.answer(202)

    assert (first.url, second.url) == (f"{A}/events", f"{B}/events")
    assert len(rig.queue) == 0


def test_only_once_every_hq_failed_in_a_row_does_the_agent_back_off() -> None:
    """A, B, C all down: three attempts at once, then a backoff of 1 s; the round after it
    starts again at A (the next in turn), and backs off 2 s."""
    rig = Rig(hq_url=[A, B, C], batch_max_age=0.0, backoff_initial=1.0)
    rig.put(1)

    urls = []
    for _ in range(3):
        attempt = rig.attempt()
        urls.append(attempt.url)
        rig.shipper.failed(attempt, "ConnectError")
    waiting = rig.shipper.wait_time()
    rig.clock.now += 1.0
    for _ in range(3):
        attempt = rig.attempt()
        urls.append(attempt.url)
        rig.shipper.failed(attempt, "ConnectError")

    assert [u.removesuffix("/events") for u in urls] == [A, B, C, A, B, C]
    assert waiting == 1.0
    assert rig.shipper.wait_time() == 2.0
    assert rig.shipper.failures == 2


def test_one_hq_backs_off_as_before() -> None:
    rig = Rig(hq_url=A, batch_max_age=0.0, backoff_initial=1.0)
    rig.put(1)

    rig.shipper.failed(rig.attempt(), "ConnectError")

    assert rig.shipper.wait_time() == 1.0


# -- a sender against scripted HQs -----------------------------------------------------------


class Hqs:
    """Scripted HQs by host: a host in `down` refuses connections; every other one stores
    (notes the event ids it got with a 202), but loses its first `lose` answers: it stores
    the batch and the connection breaks before the agent hears back."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.lose: Counter[str] = Counter()
        self.stored: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.requests.append(host)
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        body = request.content
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        events = orjson.loads(body)
        self.received.update(e["id"] for e in events)
        new = [e["id"] for e in events if e["id"] not in self.stored]
        self.stored.update(new)  # HQ stores by id: a batch sent again adds nothing
        if self.lose[host]:
            self.lose[host] -= 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return httpx.Response(202)


def sender_config(tmp_path: Path, **changes: Any) -> AgentConfig:
    options: dict[str, Any] = {
        "token": "t",
        "hq_url": [A, B],
        "queue_dir": tmp_path,
        "batch_max_age": 0.0,
        "batch_max_events": 10,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "shutdown_timeout": 10.0,
    }
    options.update(changes)
    return AgentConfig(**options)


def test_the_sender_carries_on_with_the_other_hq_and_delivers_everything_once(
    tmp_path: Path,
) -> None:
    """A answers, then goes down after storing a batch whose answer is lost: the agent sends
    that batch to B, which finds it stored, and goes on with B; nothing is missing."""
    hqs = Hqs()
    events = [make_event(string_properties={"n": str(i)}) for i in range(100)]
    with Sender(sender_config(tmp_path), transport=httpx.MockTransport(hqs)) as sender:
        for event in events[:30]:
            sender.send(event)
        assert sender.flush(10)
        hqs.lose["a.test"] = 1
        for event in events[30:60]:
            sender.send(event)
        assert sender.flush(10)
        hqs.down.add("a.test")
        for event in events[60:]:
            sender.send(event)
        assert sender.flush(10)
        stats = sender.stats

    assert len(hqs.stored) == 100
    # The batch whose answer was lost went out twice (A, then B), every other event once.
    assert Counter(hqs.received.values()) == {1: 90, 2: 10}
    assert (stats.sent, stats.dropped, stats.queued) == (100, 0, 0)
    assert hqs.requests[-1] == "b.test"
    # Stays with B once A failed: no request to A after B's first.
    assert "a.test" not in hqs.requests[hqs.requests.index("b.test") :]


# -- the controller ----------------------------------------------------------------------------


def test_the_controller_asks_the_next_hq_for_its_order_and_stays_with_it() -> None:
    first, second = OrderHQ(), OrderHQ()
    first.down = True
    second.order = order(("os/cpu", "Scheduler", "0/10 * * * * ?"))
    delivery = Delivery()
    delivery.config = delivery.config.replace(hq_url=[A, B])

    def route(request: httpx.Request) -> httpx.Response:
        return (first if request.url.host == "a.test" else second)(request)

    control = Controller(delivery, "monitor", transport=httpx.MockTransport(route))
    try:
        outcomes = [control.poll(), control.poll()]
    finally:
        control.stop()

    assert outcomes == ["applied", "unchanged"]
    assert first.requests == []  # it refused every connection
    assert [r.url.host for r in second.requests].count("b.test") == len(second.requests) >= 3
