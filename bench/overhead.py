"""Figure (g): what the agents cost the application they sit in, shipping to HQ for real.

(g1, g2, g3) A trivial ASGI app (Starlette under uvicorn, one worker) and a trivial WSGI app
(a plain callable under gunicorn, one sync worker) in three arms per round, alternated ABC CBA:
alone; with the request agent shipping to HQ and Elasticsearch; with the agent shipping to a
stub that answers 202 and stores nothing (a diagnostic of the agent's own cost). Each arm is a
fresh server process: warmed up by a short `wrk` run, then loaded by `wrk` at a light paced
load (two connections, 1 ms between requests: latency, g3) once the warm-up's events are
shipped and indexed (the app, HQ and the stub quiet again: see `settle`), then over 16 connections
(throughput at saturation, g1 and g2), then stopped with SIGTERM, which closes the agent's
sender: it sends everything still queued before the process exits (so the next arm starts with
Elasticsearch idle) and writes its counters. Every agent arm then checks the counters, and
that Elasticsearch holds exactly the events the sender counted as sent. Nothing is pinned: the
app, wrk, HQ and Elasticsearch share the machine's cores, so in the hq arms Elasticsearch's
indexing competes with the app.

(g4) Log records per second through `LogHandler` (to a `Sender` to HQ, or to the stub) and
through a plain `logging.FileHandler`, each in a fresh process (bench/lograte.py), alternated
the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psutil

from . import wrk as wrk_tool
from .documents import SPACE
from .procs import ROOT, cpu_seconds, free_port, wait_http, yielding

Say = Callable[[str], None]


class OverheadError(RuntimeError):
    """A server or tool of figure (g) failed: the arm's figures would mean nothing."""


@dataclass
class Wrk:
    """What one `wrk --latency` run printed."""

    requests: int
    rate: float
    p50: float  # milliseconds
    p90: float
    p99: float
    errors: int  # socket errors and non-2xx answers
    cpu: float = 0.0  # wrk's own CPU-seconds (user + system)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> Wrk:
    percentiles = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", output, re.MULTILINE))
    requests = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if not (requests and rate and len(percentiles) == 3):
        raise OverheadError(f"cannot read wrk's output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Wrk(
        requests=int(requests.group(1)),
        rate=float(rate.group(1)),
        p50=_ms(percentiles["50"]),
        p90=_ms(percentiles["90"]),
        p99=_ms(percentiles["99"]),
        errors=errors + (int(non_2xx.group(1)) if non_2xx else 0),
    )


PACED = Path(__file__).resolve().parent / "paced.lua"
# Light load for g3: two connections, each pausing 1 ms between requests (bench/paced.lua).
LIGHT_CONNECTIONS = 2


def run_wrk(
    wrk: str, url: str, seconds: float, connections: int, threads: int = 2, paced: bool = False
) -> Wrk:
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if paced:
        command[-1:-1] = ["-s", str(PACED)]
    returncode, out, err, cpu = wrk_tool.measured(command)
    if returncode:
        raise OverheadError(f"{' '.join(command)} failed:\n{out.decode()}{err.decode()}")
    measured = parse_wrk(out.decode())
    measured.cpu = cpu
    return measured


class Server:
    """uvicorn or gunicorn serving bench/apps.py on a free port, as a process of its own:
    `asgi`, `wsgi`, `stub` (the stub HQ), `null` (`null_events`, for figure f3-floor) or
    `null-lean` (the same on HQ's own way in, `nullprotocol.py`, for f3-floor-lean)."""

    def __init__(self, kind: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        if kind in ("null", "null-lean"):
            command = [
                sys.executable, "-m", "uvicorn", "bench.apps:null_events",
                "--port", str(self.port), "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
            if kind == "null-lean":
                command += ["--http", "bench.nullprotocol:NullProtocol"]
        elif kind in ("asgi", "stub"):
            factory = "bench.apps:asgi_app" if kind == "asgi" else "bench.apps:hq_stub"
            command = [
                sys.executable, "-m", "uvicorn", "--factory", factory,
                "--port", str(self.port), "--no-access-log", "--log-level", "warning",
                "--timeout-graceful-shutdown", "600",
            ]  # fmt: skip
        else:
            command = [
                sys.executable, "-m", "gunicorn", "bench.apps:wsgi_app",
                "-c", "python:bench.gunicorn", "--bind", f"127.0.0.1:{self.port}",
                "--workers", "1", "--graceful-timeout", "600", "--log-level", "warning",
            ]  # fmt: skip
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            wait_http(self.url, 60)
        except RuntimeError:
            self.stop()
            raise
        # gunicorn answers from its worker: the process whose CPU is the app's.
        children = psutil.Process(self.process.pid).children()
        self.pid = children[0].pid if kind == "wsgi" and children else self.process.pid

    def stop(self) -> None:
        """SIGTERM, and wait: a clean stop closes the agent, which sends what is queued."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(900)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise OverheadError("the server did not stop within 900 s") from None
        self._log.close()


def count_marker(es_url: str, prefix: str, marker: str) -> int:
    """Events of the benchmark space with this marker, after a refresh."""
    indices = f"{prefix}-{SPACE}-*"
    refresh = urllib.request.Request(  # noqa: S310 - our own local URL
        f"{es_url}/{indices}/_refresh?allow_no_indices=true", method="POST"
    )
    urllib.request.urlopen(refresh, timeout=120).close()  # noqa: S310
    query = urllib.parse.urlencode({"q": f"marker:{marker}", "allow_no_indices": "true"})
    with urllib.request.urlopen(f"{es_url}/{indices}/_count?{query}", timeout=120) as answer:  # noqa: S310
        return int(orjson.loads(answer.read())["count"])


# The arms: the app alone; with the agent shipping to HQ, which stores into Elasticsearch
# on the same cores; with the agent shipping to a stub that answers 202 and stores nothing
# (a diagnostic: the agent's own cost, without the indexing it causes on a shared machine).
ARMS = ("plain", "hq", "stub")


@dataclass
class Arm:
    """One arm: wrk's figures at saturation (`wrk`) and at a light paced load (`light`),
    CPU-seconds per process over the saturated run, the agent's final counters
    and what Elasticsearch holds of its events (`hq` arms)."""

    kind: str
    arm: str
    wrk: Wrk
    light: Wrk
    cpu: dict[str, float]
    stats: dict[str, int] = field(default_factory=dict)
    stored: int = 0
    batches: int = 0  # requests the agent made to the stub (`stub` arms)
    settled: float = 0.0  # seconds the warm-up's backlog took to drain before the light load
    light_es: float = 0.0  # Elasticsearch's CPU (cores) during the light load
    # hq arms: the light load again with Elasticsearch's threads under SCHED_IDLE (None where
    # that is not allowed): on this box its indexing bursts share the app's cores, which in
    # production they do not; this tells their share of g3 from the agent's.
    light_idle: Wrk | None = None

    @property
    def events_per_batch(self) -> float:
        """Events the agent shipped per request to the stub, over the whole arm."""
        return self.stats.get("sent", 0) / max(self.batches, 1)

    def cpu_us_per_request(self, name: str) -> float:
        return 1e6 * self.cpu[name] / max(self.wrk.requests, 1)


@dataclass
class Context:
    """Where the arms run: wrk, HQ, its stub and Elasticsearch, and the processes whose CPU
    counts."""

    wrk: str
    hq_url: str
    stub_url: str
    es_url: str
    prefix: str
    pids: dict[str, int | None]
    work: Path
    say: Say

    def environ(self, arm: str, kind: str, marker: str, stats: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGSPACE_", "BENCH_"))}
        if arm != "plain":
            queue = self.work / marker
            queue.mkdir()
            env.update(
                BENCH_AGENT_HQ_URL=self.hq_url if arm == "hq" else self.stub_url,
                BENCH_AGENT_QUEUE_DIR=str(queue),
                BENCH_AGENT_MARKER=marker,
                BENCH_AGENT_STATS=str(stats),
            )
            if kind == "wsgi":
                env["BENCH_AGENT_WSGI"] = "1"
        return env

    def check_delivery(
        self, what: str, arm: str, marker: str, stats_file: Path
    ) -> tuple[dict[str, int], int]:
        """The sender's final counters, and what Elasticsearch holds of the arm's events:
        everything sent, nothing left (the stub stores nothing)."""
        stats: dict[str, int] = orjson.loads(stats_file.read_bytes())
        stored = count_marker(self.es_url, self.prefix, marker) if arm == "hq" else 0
        if stats["queued"] or stats["dropped"] or (arm == "hq" and stored != stats["sent"]):
            raise OverheadError(f"{what} {arm} arm: the sender counted {stats}; stored {stored}")
        return stats, stored


def app_arm(
    ctx: Context, kind: str, arm: str, seconds: float, light_seconds: float, connections: int
) -> Arm:
    """Warm-up, then a light paced load (latency while the agent keeps up), then
    `connections` (throughput at saturation), then a clean stop."""
    marker = f"g-{kind}-{uuid.uuid4().hex[:12]}"
    stats_file = ctx.work / f"{marker}.json"
    batches_before = stub_requests(ctx.stub_url) if arm == "stub" else 0
    server = Server(kind, ctx.environ(arm, kind, marker, stats_file), ctx.work / "server.log")
    try:
        run_wrk(ctx.wrk, server.url, 2, connections)  # warm-up, not counted
        settled = settle([server.pid, *(ctx.pids.get(name) for name in ("hq", "stub", "es"))])
        es_before, began = cpu_seconds(ctx.pids.get("es")), time.monotonic()
        light = run_wrk(
            ctx.wrk, server.url, light_seconds, LIGHT_CONNECTIONS, threads=1, paced=True
        )
        light_es = (cpu_seconds(ctx.pids.get("es")) - es_before) / (time.monotonic() - began)
        light_idle = None
        if arm == "hq":  # the same with Elasticsearch yielding the cores (see `Arm`)
            with yielding(ctx.pids.get("es")) as lowered:
                if lowered:
                    light_idle = run_wrk(
                        ctx.wrk, server.url, light_seconds, LIGHT_CONNECTIONS, threads=1,
                        paced=True,
                    )  # fmt: skip
        pids = {**ctx.pids, "app": server.pid}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        result = run_wrk(ctx.wrk, server.url, seconds, connections)
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        cpu["wrk"] = result.cpu
    finally:
        server.stop()
    if result.errors or light.errors or (light_idle and light_idle.errors):
        raise OverheadError(f"{kind} arm: socket errors or non-2xx answers")
    measured = Arm(
        kind, arm, result, light, cpu, settled=settled, light_es=light_es, light_idle=light_idle
    )
    if arm != "plain":
        measured.stats, measured.stored = ctx.check_delivery(kind, arm, marker, stats_file)
    if arm == "stub":
        measured.batches = stub_requests(ctx.stub_url) - batches_before
    return measured


def settle(pids: list[int | None], timeout: float = 60.0) -> float:
    """Wait until the processes are quiet (together under 8 % of a core over a quarter of a
    second), at most `timeout` seconds; returns the seconds waited. So that g3's light load
    never measures the drain of a backlog the saturating warm-up left the agent, HQ and
    Elasticsearch: a guard, suspected when g3 came out at 1.95 ms on 1 Dec. In the run of 1 Dec
    that had it, every arm was quiet at once (0.3-0.5 s): the warm-up's events were shipped by
    the time wrk stopped, and g3 (2.46 ms) was the light load's own."""
    began = time.monotonic()
    used = sum(cpu_seconds(pid) for pid in pids)
    while time.monotonic() - began < timeout:
        time.sleep(0.25)
        now = sum(cpu_seconds(pid) for pid in pids)
        if now - used < 0.02:
            break
        used = now
    return time.monotonic() - began


def stub_requests(stub_url: str) -> int:
    """How many batches the stub HQ was sent so far."""
    with urllib.request.urlopen(f"{stub_url}/requests", timeout=60) as answer:  # noqa: S310
        return int(orjson.loads(answer.read())["requests"])


@dataclass
class LogArm:
    arm: str
    records: int
    seconds: float
    stats: dict[str, int] = field(default_factory=dict)
    stored: int = 0

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def log_arm(ctx: Context, arm: str, records: int) -> LogArm:
    """`plain`: a FileHandler; `hq` and `stub`: LogHandler to a sender to HQ or the stub."""
    marker = f"g-log-{uuid.uuid4().hex[:12]}"
    stats_file = ctx.work / f"{marker}.json"
    handler = "stream" if arm == "plain" else "agent"
    done = subprocess.run(
        [sys.executable, "-m", "bench.lograte", handler, str(records), str(ctx.work)],
        env=ctx.environ(arm, "log", marker, stats_file),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise OverheadError(f"bench.lograte {handler} failed:\n{done.stderr}")
    measured = LogArm(arm, records, orjson.loads(done.stdout.splitlines()[-1])["seconds"])
    if arm != "plain":
        try:
            measured.stats, measured.stored = ctx.check_delivery("log", arm, marker, stats_file)
        except OverheadError as error:  # the agent's own warnings say what it dropped and why
            raise OverheadError(f"{error}\n{done.stderr[-2000:]}") from None
    return measured


class StubHQ:
    """An HQ that answers 202 to every batch and stores nothing (bench/apps.py `hq_stub`)."""

    def __init__(self, log: Path) -> None:
        self.server = Server("stub", dict(os.environ), log)
        self.url = self.server.url.rstrip("/")
        self.pid = self.server.pid

    def stop(self) -> None:
        self.server.stop()


@contextmanager
def workspace() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="logspace-bench-g-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
