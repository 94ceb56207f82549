"""An Elasticsearch stand-in, for experiments on HQ's own CPU; never for figures.

`python -m bench.standin serve --port N` is `python -m logspace serve` with the store's client
replaced by `StandIn`: every `_bulk` is answered as all created after BENCH_STANDIN_DELAY
seconds (0.002 by default, an idle Elasticsearch; 0.05 is about what the local node takes for a
fleet's shared bulk of a thousand events), anything else with `{}`, and the templates count as
installed. Nothing is stored: what is measured is HQ alone, with no Elasticsearch on the cores.

`python -m bench.standin fleet` loads such HQs with figure (f)'s fleet (wrk, 512 keep-alive
connections, six events a request) and prints HQ's CPU per event, configurations alternated
round by round: BENCH_STANDIN_CONFIGS="a:;b:BENCH_STANDIN_DELAY=0.05" (a name, then the
variables of that HQ, comma-separated; BENCH_STANDIN_ROOT=<a checkout, its C extension built>
runs another code tree; BENCH_STANDIN_DELAY=real with LOGSPACE_ES_URL=<a node> has that HQ
store in a real Elasticsearch, for comparing code trees under the fleet as (f) loads them),
BENCH_STANDIN_ROUNDS (4), BENCH_STANDIN_SECONDS (8).

`python -m bench.standin inprocess` drives HQ's protocol in this process, over transports that
only collect what is written: BENCH_STANDIN_K connections (170, a shared bulk's worth) each get
one fleet request (BENCH_STANDIN_EVENTS events, 6 by default: 996 gives big batches of one
space), the loop runs until all are answered, BENCH_STANDIN_N times (200); the stand-in answers
each bulk after BENCH_STANDIN_INPROCESS_DELAY seconds (0: at once). It prints the CPU
per request and per event, without kernel or load generator: the steadiest figure for comparing code
changes, a few per cent from run to run within minutes. The box's own speed drifts more than
that over an hour (28 to 33 µs for the same code here), so compare alternated runs only.
"""

from __future__ import annotations

import asyncio
import logging.config
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import uvloop
from uvicorn.config import Config
from uvicorn.lifespan.on import LifespanOn
from uvicorn.server import ServerState

import logspace.elastic.store as store_module
from logspace.app import create_app
from logspace.cli import main as logspace_main
from logspace.cli import server_options
from logspace.ops import logs
from logspace.ops.collector import tune
from logspace.settings import Settings

from . import wrk
from .countdown import Countdown
from .fleetevents import Batch, Fleet
from .procs import ROOT, free_port, tree_cpu_seconds, wait_http

_FLEET = Fleet("standin")


class _Answer:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body


class StandIn:
    """The part of `AsyncElasticsearch` HQ's store uses, answering at once (after `delay`)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def options(self, **_: Any) -> StandIn:
        return self

    async def perform_request(self, method: str, path: str, **_: Any) -> _Answer:
        await asyncio.sleep(self.delay)
        return _Answer({"errors": False} if path == "/_bulk" else {})

    async def close(self) -> None:
        return None


def install(delay: float) -> None:
    """Make HQ's store use a `StandIn`, its templates taken as installed (the experiment)."""

    async def installed(self: store_module.Store, *_: Any, **__: Any) -> list[str]:
        return []

    store_module.connect = lambda settings: StandIn(delay)  # type: ignore[attr-defined,assignment,return-value]
    store_module.Store.install_templates = installed  # type: ignore[method-assign]
    store_module.Store._templates_fresh = lambda self: True  # type: ignore[method-assign]


def _delay() -> float:
    return float(os.environ.get("BENCH_STANDIN_DELAY", "0.002"))


def fleet() -> None:
    configs = [
        (name, dict(pair.split("=", 1) for pair in variables.split(",") if pair))
        for name, _, variables in (
            part.partition(":") for part in os.environ.get("BENCH_STANDIN_CONFIGS", "a:").split(";")
        )
    ]
    rounds = int(os.environ.get("BENCH_STANDIN_ROUNDS", "4"))
    seconds = int(os.environ.get("BENCH_STANDIN_SECONDS", "8"))
    workdir = Path(tempfile.mkdtemp(prefix="logspace-standin-"))
    print(f"HQ's logs in {workdir}")
    results: dict[str, list[float]] = {name: [] for name, _ in configs}
    for round_ in range(rounds):
        # Alternated, and reversed every other round: neither goes first each time.
        for name, variables in configs if round_ % 2 == 0 else configs[::-1]:
            per_event, rate = _fleet_arm(name, variables, seconds, workdir)
            results[name].append(per_event)
            print(f"round {round_} {name}: {rate:.0f} events/s, HQ {per_event:.2f} µs per event")
    for name, values in results.items():
        spread = " ".join(f"{v:.2f}" for v in values)
        print(f"{name}: median {statistics.median(values):.2f} µs per event ({spread})")


def _fleet_arm(
    name: str, variables: dict[str, str], seconds: int, workdir: Path
) -> tuple[float, float]:
    variables = dict(variables)
    root = variables.pop("BENCH_STANDIN_ROOT", str(ROOT))
    port = free_port()
    environ = {
        **os.environ,
        "LOGSPACE_ES_URL": "http://127.0.0.1:1",  # never asked: the stand-in answers
        "LOGSPACE_INDEX_PREFIX": _FLEET.prefix,
        "LOGSPACE_SPACE_TOKENS": _FLEET.tokens_setting(),
        **variables,
    }
    with (workdir / f"hq-{name}.log").open("ab") as log:
        hq = subprocess.Popen(
            [sys.executable, "-m", "bench.standin", "serve", "--port", str(port)],
            env=environ,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/")
            wrk.run(url, _config(workdir), 512, 3)  # warm-up
            # Ids of its own (a new nonce): a real Elasticsearch answers 409 to ids it has.
            config = _config(workdir)
            before = tree_cpu_seconds(hq.pid)
            run = wrk.run(url, config, 512, seconds)
            used = tree_cpu_seconds(hq.pid) - before
        finally:
            hq.terminate()
            hq.wait()
    if run.refused or run.socket_errors or not run.events:
        raise RuntimeError(f"{name}: {run.refused} refused, {run.errors} errors")
    return used * 1e6 / run.events, run.events / seconds


def _config(workdir: Path) -> Path:
    return _FLEET.lua_config(workdir / "hq.lua", "hq", 6, random.getrandbits(32))


class _Collected(asyncio.Transport):
    """A transport that keeps what is written, for `inprocess`."""

    def __init__(self, answered: Countdown) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self._closing = False
        self._answered = answered

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.written:
            self._answered.one()
        self.written.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        addresses = {"sockname": ("127.0.0.1", 4567), "peername": ("127.0.0.1", 50000)}
        return addresses.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _inprocess(log: IO[str]) -> None:
    connections = int(os.environ.get("BENCH_STANDIN_K", "170"))
    repeats = int(os.environ.get("BENCH_STANDIN_N", "200"))
    environ = {
        **os.environ,
        "LOGSPACE_ES_URL": "http://127.0.0.1:1",
        "LOGSPACE_INDEX_PREFIX": _FLEET.prefix,
        "LOGSPACE_SPACE_TOKENS": _FLEET.tokens_setting(),
    }
    settings = Settings.from_env(environ)
    options = server_options(settings)
    # As `logspace serve` logs, but to a file: the access lines are part of a request's cost.
    log_config = options.pop("log_config")
    log_config["handlers"]["default"]["stream"] = log
    logs.skip_process_details()
    logging.config.dictConfig(log_config)
    config = Config(create_app(settings), **options, log_config=None)
    config.load()
    lifespan = LifespanOn(config)
    await lifespan.startup()
    tune()
    state = ServerState()
    protocols = []
    transports = []
    answered = Countdown()
    for _ in range(connections):
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=state, app_state=lifespan.state
        )
        transport = _Collected(answered)
        protocol.connection_made(transport)
        protocols.append(protocol)
        transports.append(transport)
    requests = []
    batches = _requests(connections * 4, int(os.environ.get("BENCH_STANDIN_EVENTS", "6")))
    for batch in batches:
        body = batch.hq_body()
        head = (
            f"PUT /events HTTP/1.1\r\nHost: hq\r\n"
            f"logspace.space-token: {_FLEET.token(batch.space)}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)

    async def one_round(number: int) -> None:
        answered.expect(connections)
        for index, (protocol, transport) in enumerate(zip(protocols, transports, strict=True)):
            transport.written.clear()
            protocol.data_received(requests[(number * connections + index) % len(requests)])
        # Without polling: with a slow stand-in, a loop that polls would be what is measured.
        await answered.done.wait()

    for number in range(20):  # warm-up
        await one_round(number)
    started = time.process_time()
    for number in range(repeats):
        await one_round(number)
    used = time.process_time() - started
    answers = {transport.written[0][:12] for transport in transports}
    await lifespan.shutdown()
    events = sum(len(batch.events) for batch in batches) / len(batches)
    print(
        f"{used * 1e6 / (repeats * connections):.2f} µs of CPU per request, "
        f"{used * 1e6 / (repeats * connections * events):.2f} per event "
        f"({connections} connections x {repeats}, {events:.0f} events each; "
        f"answers {sorted(answers)})"
    )


def _requests(count: int, events: int) -> list[Batch]:
    """`count` requests of about `events` events each: the fleet's six-event batches of one
    space taken together."""
    per_request = max(1, events // 6)
    if per_request == 1:
        return list(_FLEET.batches(count, 0, seed=1))  # the spaces in turn, as a fleet sends
    by_space: dict[str, list[Batch]] = {}
    for batch in _FLEET.batches(count * per_request, 0, seed=1):
        by_space.setdefault(batch.space, []).append(batch)
    requests = []
    for batches in by_space.values():
        for start in range(0, len(batches) - per_request + 1, per_request):
            part = batches[start : start + per_request]
            requests.append(
                Batch(
                    part[0].space,
                    [event for batch in part for event in batch.events],
                    [event_id for batch in part for event_id in batch.ids],
                    part[0].month,
                )
            )
    return requests


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "fleet":
        fleet()
    elif command == "inprocess":
        install(float(os.environ.get("BENCH_STANDIN_INPROCESS_DELAY", "0")))
        with tempfile.NamedTemporaryFile("w", prefix="logspace-standin-", suffix=".log") as log:
            uvloop.run(_inprocess(log))
    else:
        if os.environ.get("BENCH_STANDIN_DELAY") != "real":
            install(_delay())
        sys.exit(logspace_main())
