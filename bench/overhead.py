"""Figure (g): what the agents cost the application they sit in, shipping to HQ for real.

(g1, g2, g3) A trivial ASGI app (Starlette under uvicorn, one worker) and a trivial WSGI app
(a plain callable under gunicorn, one sync worker), with the request agent and without, arms
alternated ABBA. Each arm is a fresh server process: warmed up by a short `wrk` run, then
loaded by `wrk` over one connection (latency at light load, g3), then over 16 (throughput at
saturation, g1 and g2), then stopped with SIGTERM, which closes the agent's sender: it sends
everything still queued before the process exits (so the next arm starts with Elasticsearch
idle) and writes its counters. Every agent arm then checks that Elasticsearch holds exactly the
events the sender counted as sent. Nothing is pinned: the app, wrk, HQ and Elasticsearch share
the machine's cores, so in the agent arms Elasticsearch's indexing competes with the app.

(g4) Log records per second through `LogHandler` (to a `Sender` to HQ) and through a plain
`logging.FileHandler`, each in a fresh process (bench/lograte.py), alternated the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from .documents import SPACE
from .procs import ROOT, cpu_seconds, free_port, wait_http

Say = Callable[[str], None]


class OverheadError(RuntimeError):
    """A server or tool of figure (g) failed: the arm's figures would mean nothing."""


def ensure_wrk(say: Say) -> str:
    """The path of `wrk`, installed from Debian's packages where it is missing (as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if os.geteuid() == 0 and apt:
        say("installing wrk (apt-get install -y wrk)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = [apt, "install", "-y", "-q", "wrk"]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode:
            subprocess.run([apt, "update", "-q"], env=env, capture_output=True, check=False)
            subprocess.run(install, env=env, capture_output=True, check=True)
        found = shutil.which("wrk")
    if not found:
        raise OverheadError("figure (g) needs wrk: install it (Debian: apt-get install wrk)")
    return found


@dataclass
class Wrk:
    """What one `wrk --latency` run printed."""

    requests: int
    rate: float
    p50: float  # milliseconds
    p90: float
    p99: float
    errors: int  # socket errors and non-2xx answers


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


def run_wrk(wrk: str, url: str, seconds: float, connections: int, threads: int = 2) -> Wrk:
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise OverheadError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


class Server:
    """uvicorn or gunicorn serving bench/apps.py on a free port, as a process of its own."""

    def __init__(self, kind: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        if kind == "asgi":
            command = [
                sys.executable, "-m", "uvicorn", "--factory", "bench.apps:asgi_app",
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


@dataclass
class Arm:
    """One arm: wrk's figures at saturation (`wrk`) and at light load (`light`, one
    connection), CPU-seconds per process over the saturated run, the agent's final counters
    and what Elasticsearch holds of its events (agent arms only)."""

    kind: str
    agent: bool
    wrk: Wrk
    light: Wrk
    cpu: dict[str, float]
    stats: dict[str, int] = field(default_factory=dict)
    stored: int = 0

    def cpu_us_per_request(self, name: str) -> float:
        return 1e6 * self.cpu[name] / max(self.wrk.requests, 1)


@dataclass
class Context:
    """Where the arms run: wrk, HQ and Elasticsearch, and the processes whose CPU counts."""

    wrk: str
    hq_url: str
    es_url: str
    prefix: str
    pids: dict[str, int | None]
    work: Path
    say: Say

    def environ(self, agent: bool, kind: str, marker: str, stats: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGSPACE_", "BENCH_"))}
        if agent:
            queue = self.work / marker
            queue.mkdir()
            env.update(
                BENCH_AGENT_HQ_URL=self.hq_url,
                BENCH_AGENT_QUEUE_DIR=str(queue),
                BENCH_AGENT_MARKER=marker,
                BENCH_AGENT_STATS=str(stats),
            )
            if kind == "wsgi":
                env["BENCH_AGENT_WSGI"] = "1"
        return env


def app_arm(
    ctx: Context, kind: str, agent: bool, seconds: float, light_seconds: float, connections: int
) -> Arm:
    """Warm-up, then one connection (latency at light load: the agent keeps up), then
    `connections` (throughput at saturation), then a clean stop."""
    marker = f"g-{kind}-{uuid.uuid4().hex[:12]}"
    stats_file = ctx.work / f"{marker}.json"
    server = Server(kind, ctx.environ(agent, kind, marker, stats_file), ctx.work / "server.log")
    try:
        run_wrk(ctx.wrk, server.url, 2, connections)  # warm-up, not counted
        light = run_wrk(ctx.wrk, server.url, light_seconds, 1, threads=1)
        pids = {**ctx.pids, "app": server.pid}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        result = run_wrk(ctx.wrk, server.url, seconds, connections)
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    finally:
        server.stop()
    if result.errors or light.errors:
        raise OverheadError(f"{kind} arm: socket errors or non-2xx answers")
    arm = Arm(kind, agent, result, light, cpu)
    if agent:
        arm.stats = orjson.loads(stats_file.read_bytes())
        arm.stored = count_marker(ctx.es_url, ctx.prefix, marker)
        if arm.stored != arm.stats["sent"] or arm.stats["queued"]:
            raise OverheadError(f"{kind} arm: the sender counted {arm.stats}; stored {arm.stored}")
    return arm


@dataclass
class LogArm:
    handler: str
    records: int
    seconds: float
    stats: dict[str, int] = field(default_factory=dict)
    stored: int = 0

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def log_arm(ctx: Context, handler: str, records: int) -> LogArm:
    marker = f"g-log-{uuid.uuid4().hex[:12]}"
    stats_file = ctx.work / f"{marker}.json"
    env = ctx.environ(handler == "agent", "log", marker, stats_file)
    done = subprocess.run(
        [sys.executable, "-m", "bench.lograte", handler, str(records), str(ctx.work)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise OverheadError(f"bench.lograte {handler} failed:\n{done.stderr}")
    measured = orjson.loads(done.stdout.splitlines()[-1])
    arm = LogArm(handler, records, measured["seconds"])
    if handler == "agent":
        arm.stats = orjson.loads(stats_file.read_bytes())
        arm.stored = count_marker(ctx.es_url, ctx.prefix, marker)
        if arm.stored != arm.stats["sent"] or arm.stats["queued"]:
            raise OverheadError(f"log arm: the sender counted {arm.stats}, ES holds {arm.stored}")
    return arm


def abba(pairs: int) -> Iterator[tuple[int, tuple[bool, bool]]]:
    """Pair numbers with their order: without the agent first in even pairs, last in odd."""
    for pair in range(pairs):
        yield pair, ((False, True) if pair % 2 == 0 else (True, False))


@contextmanager
def workspace() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="logspace-bench-g-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Measured:
    """Every arm of figure (g), per pair."""

    apps: dict[str, list[tuple[Arm, Arm]]] = field(default_factory=dict)  # (plain, agent)
    logs: list[tuple[LogArm, LogArm]] = field(default_factory=list)  # (stream, agent)

    def as_json(self) -> dict[str, Any]:
        def arm(a: Arm) -> dict[str, Any]:
            return {
                "rate": a.wrk.rate,
                "p50": a.wrk.p50,
                "p99": a.wrk.p99,
                "light_p50": a.light.p50,
                "light_p99": a.light.p99,
                "cpu_us": {k: round(a.cpu_us_per_request(k), 2) for k in a.cpu},
                "stats": a.stats,
            }

        return {
            "apps": {k: [[arm(p), arm(a)] for p, a in v] for k, v in self.apps.items()},
            "logs": [[s.rate, a.rate] for s, a in self.logs],
        }


def measure(
    ctx: Context,
    pairs: int,
    seconds: float,
    light_seconds: float,
    connections: int,
    records: int,
) -> Measured:
    measured = Measured()
    for kind in ("asgi", "wsgi"):
        ctx.say(
            f"(g) {kind}: {pairs} ABBA pairs, each arm {light_seconds:g} s of wrk -c1 then "
            f"{seconds:g} s of wrk -c{connections}"
        )
        measured.apps[kind] = []
        for pair, order in abba(pairs):
            arms: dict[bool, Arm] = {}
            for agent in order:
                arms[agent] = arm = app_arm(ctx, kind, agent, seconds, light_seconds, connections)
                shipped = f", {arm.stored} events in ES" if agent else ""
                ctx.say(
                    f"  pair {pair + 1} {'agent' if agent else 'plain':5}: "
                    f"{arm.wrk.rate:7.0f} requests/s (p99 {arm.wrk.p99:.2f} ms), one "
                    f"connection p99 {arm.light.p99:.3f} ms, app "
                    f"{arm.cpu_us_per_request('app'):.1f} CPU-us/request{shipped}"
                )
            measured.apps[kind].append((arms[False], arms[True]))
    ctx.say(f"(g4) log records: {pairs} ABBA pairs of {records} records")
    for pair, order in abba(pairs):
        logs: dict[bool, LogArm] = {}
        for agent in order:
            logs[agent] = log = log_arm(ctx, "agent" if agent else "stream", records)
            ctx.say(f"  pair {pair + 1} {log.handler:6}: {log.rate:8.0f} records/s")
        measured.logs.append((logs[False], logs[True]))
    return measured
