"""Controller: runs agents as HQ orders them, like the original Logspace's HqAgentController.

Every `poll_interval` seconds (and at once when its agents change) the controller

1. uploads its capabilities, `PUT /capabilities/{id}`, if its agents changed since the last
   upload HQ accepted;
2. asks for its order, `GET /orders/{id}`, sending `If-None-Match` and `If-Modified-Since` from
   the last answer, so an unchanged order costs a `304` and nothing else;
3. applies a new order: each `Scheduler` agent runs by its cron expression, `Application`
   agents may send, `Off` agents stop; `commit-max-seconds` becomes the sender's batch age.

Agents the order does not name follow `unordered`: `"off"` (the default, as in the original:
without an order nothing is sent) or `"on"` (scheduled agents run every `default_interval`
seconds, application agents send). `404` means there is no order: every agent follows
`unordered`. When HQ cannot be reached or refuses the request, nothing changes: the agents
keep following the last order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, tzinfo
from typing import Any, Literal, Protocol

import httpx
import orjson

from ..orders import InvalidOrder, Order, is_controller_id, parse_order
from .builder import default_system
from .config import AgentConfig
from .scheduler import Collector, Schedule, Scheduler
from .sink import Sink

__all__ = ["Controller", "Delivery", "Unordered"]

log = logging.getLogger("logspace.agent")

Unordered = Literal["off", "on"]


class Delivery(Sink, Protocol):
    """What the controller needs of a sender (`Sender` and `AsyncSender` are ones)."""

    config: AgentConfig

    def set_batch_max_age(self, seconds: float | None) -> None: ...


class _Gate:
    """The sink of an application agent: passes events on only while its order allows."""

    def __init__(self, controller: Controller, agent_id: str) -> None:
        self._controller = controller
        self.agent_id = agent_id

    def send(self, event: Mapping[str, Any]) -> None:
        if self._controller.enabled(self.agent_id):
            self._controller.sender.send(event)


class Controller:
    """Follows the orders HQ has for controller `controller_id`.

    with Sender(config) as sender:
        controller = Controller(sender, "monitor", agents=os_agents())
        controller.run()  # until controller.stop(), Ctrl-C or SIGTERM
    """

    def __init__(
        self,
        sender: Delivery,
        controller_id: str,
        *,
        agents: Iterable[Collector] = (),
        poll_interval: float = 60.0,
        unordered: Unordered = "off",
        default_interval: float = 10.0,
        zone: tzinfo = UTC,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not is_controller_id(controller_id):
            raise ValueError(
                f"{controller_id!r} is not a controller id: 1 to 128 letters, digits, '_', '-' "
                "and '.', starting with a letter or digit"
            )
        if not poll_interval > 0 or not default_interval > 0:
            raise ValueError("poll_interval and default_interval must be greater than zero")
        if unordered not in ("off", "on"):
            raise ValueError(f"unordered must be 'off' or 'on', found {unordered!r}")
        self.sender = sender
        self.controller_id = controller_id
        self.poll_interval = poll_interval
        self.unordered = unordered
        self.default_interval = default_interval
        self.scheduler = Scheduler(sender, zone=zone)
        # The order in force; None: none (yet), every agent follows `unordered`.
        self.order: Order | None = None
        self._config = sender.config
        self._client = httpx.Client(transport=transport, timeout=self._config.timeout)
        self._collectors: dict[str, Collector] = {}
        self._applications: dict[str, _Gate] = {}
        self._version = 0
        self._uploaded: int | None = None
        self._validators: dict[str, str] = {}
        # The HQ that last answered, an index into `hq_urls`.
        self._current = 0
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for collector in agents:
            self.add(collector)

    # -- agents -------------------------------------------------------------------------

    def add(self, collector: Collector) -> None:
        """A scheduled agent; it runs as the order in force says."""
        with self._lock:
            self._collectors[collector.agent_id] = collector
            self._changed()

    def application(self, agent_id: str) -> Sink:
        """A sink for an application agent (e.g. `LogHandler`, the middleware), passing its
        events on only while the order lets the agent send."""
        with self._lock:
            gate = self._applications.get(agent_id) or _Gate(self, agent_id)
            self._applications[agent_id] = gate
            self._changed()
            return gate

    def remove(self, agent_id: str) -> bool:
        with self._lock:
            found = (
                self._collectors.pop(agent_id, None) or self._applications.pop(agent_id, None)
            ) is not None
            self.scheduler.remove(agent_id)
            if found:
                self._changed()
            return found

    def _changed(self) -> None:
        self._version += 1
        self._apply()
        self._wake.set()  # tell HQ now, not at the next poll

    def enabled(self, agent_id: str) -> bool:
        """Whether the agent may send: its order is Application or Scheduler, or it has none
        and `unordered` is on."""
        entry = self.order.get(agent_id) if self.order is not None else None
        if entry is None:
            return self.unordered == "on"
        return entry.trigger != "Off"

    def _schedule(self, agent_id: str) -> Schedule | None:
        entry = self.order.get(agent_id) if self.order is not None else None
        if entry is None:
            return self.default_interval if self.unordered == "on" else None
        return entry.schedule if entry.trigger == "Scheduler" else None

    def _apply(self) -> None:
        """Make the scheduler follow the order; agents whose schedule stays keep their turns."""
        with self._lock:
            current = self.scheduler.intervals
            for agent_id, collector in self._collectors.items():
                wanted = self._schedule(agent_id)
                if wanted == current.get(agent_id):
                    continue
                if wanted is None:
                    self.scheduler.remove(agent_id)
                else:
                    self.scheduler.add(collector, wanted)
            commit = None if self.order is None else self.order.commit_max_seconds
            self.sender.set_batch_max_age(None if commit is None else float(commit))

    # -- talking to HQ --------------------------------------------------------------------

    def capabilities(self) -> dict[str, Any]:
        """What this controller tells HQ it can run, in the original format."""
        with self._lock:
            agents = [
                {"id": agent_id, "type": agent_id, "trigger-types": ["Off", "Scheduler"]}
                for agent_id in self._collectors
            ] + [
                {"id": agent_id, "type": agent_id, "trigger-types": ["Off", "Application"]}
                for agent_id in self._applications
            ]
        return {
            "id": self.controller_id,
            "system": self._config.system or default_system(),
            "agent-capabilities": [{**agent, "property-descriptions": []} for agent in agents],
        }

    def poll(self) -> str:
        """One round with HQ; says what happened: `applied`, `unchanged`, `no order`,
        `unreachable`, `refused` or `invalid`. With several HQs, one that cannot be reached or
        answers 5xx is passed over for the next at once; the controller stays with the one
        that answers."""
        urls = self._config.hq_urls
        outcome = "unreachable"
        for step in range(len(urls)):
            index = (self._current + step) % len(urls)
            outcome, elsewhere = self._poll_at(urls[index])
            if not elsewhere:
                self._current = index
                break
        return outcome

    def _poll_at(self, base: str) -> tuple[str, bool]:
        """One round with the HQ at `base`: the outcome, and whether another HQ may do
        better (this one cannot be reached or failed with 5xx)."""
        headers = {"accept": "application/json", "logspace.space-token": self._config.token}
        with self._lock:
            version = self._version
        if self._uploaded != version:
            try:
                response = self._client.put(
                    f"{base}/capabilities/{self.controller_id}",
                    content=orjson.dumps(self.capabilities()),
                    headers={**headers, "content-type": "application/json"},
                )
            except httpx.HTTPError as error:
                log.warning("HQ at %s cannot be reached (%s)", base, error)
                return "unreachable", True
            if response.is_success:
                self._uploaded = version
            else:
                log.error(
                    "HQ at %s refuses the capabilities of controller %s: %s",
                    base,
                    self.controller_id,
                    _answer(response),
                )
        try:
            response = self._client.get(
                f"{base}/orders/{self.controller_id}", headers={**headers, **self._validators}
            )
        except httpx.HTTPError as error:
            log.warning("HQ at %s cannot be reached (%s)", base, error)
            return "unreachable", True
        if response.status_code == 304:
            return "unchanged", False
        if response.status_code == 404:
            self._validators = {}
            if self.order is not None:
                log.info(
                    "HQ has no order for controller %s any more; agents are %s",
                    self.controller_id,
                    self.unordered,
                )
            self._follow(None)
            return "no order", False
        if response.status_code != 200:
            log.error(
                "HQ at %s refuses the order of controller %s: %s",
                base,
                self.controller_id,
                _answer(response),
            )
            return "refused", response.status_code >= 500
        try:
            order = parse_order(response.content)
        except InvalidOrder as invalid:
            log.error(
                "the order of controller %s cannot be followed: %s", self.controller_id, invalid
            )
            return "invalid", False
        self._validators = {
            name: response.headers[header]
            for name, header in (("if-none-match", "etag"), ("if-modified-since", "last-modified"))
            if header in response.headers
        }
        self._follow(order)
        log.info("controller %s follows its order: %s", self.controller_id, _describe(order))
        return "applied", False

    def _follow(self, order: Order | None) -> None:
        with self._lock:
            self.order = order
            if order is not None:
                unknown = [
                    agent.agent_id
                    for agent in order.agents
                    if agent.agent_id not in self._collectors
                    and agent.agent_id not in self._applications
                ]
                if unknown:
                    log.info(
                        "the order names agents controller %s does not have: %s",
                        self.controller_id,
                        ", ".join(unknown),
                    )
            self._apply()

    # -- running --------------------------------------------------------------------------

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.poll()
            except Exception:
                # E.g. a bug in an agent's id; the agents keep their orders, try again later.
                log.exception("controller %s failed to poll HQ", self.controller_id)
            self._wake.wait(self.poll_interval)

    def start(self) -> Controller:
        """Poll HQ and run the agents in background threads until `stop()`."""
        self._start_polling()
        self.scheduler.start()
        return self

    def run(self) -> None:
        """Poll HQ in the background and run the agents in this thread until `stop()`."""
        self._start_polling()
        self.scheduler.run()

    def _start_polling(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._poll_forever, name="logspace-controller", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling and running agents; the sender stays open (close it yourself)."""
        self._stop.set()
        self._wake.set()
        self.scheduler.stop(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._client.close()


def _answer(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("type"), str):
        return f"HTTP {response.status_code} {body['type']}: {body.get('message', '')}"
    return f"HTTP {response.status_code}"


def _describe(order: Order) -> str:
    parts = [
        f"{agent.agent_id} {agent.trigger}"
        + (f" '{agent.parameter}'" if agent.trigger == "Scheduler" else "")
        for agent in order.agents
    ]
    if order.commit_max_seconds is not None:
        parts.append(f"commit-max-seconds {order.commit_max_seconds}")
    return ", ".join(parts) or "no agents"
