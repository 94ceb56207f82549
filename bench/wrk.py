"""wrk (Debian's package), the closed-loop load generator of figure (f), run with `fleet.lua`
(figure (g) runs it too, see bench/overhead.py).

wrk is compiled and keeps hundreds of keep-alive connections on a couple of threads, so the
box measures HQ and Elasticsearch rather than the generator; its own CPU is read from the
rusage of the finished process (`os.wait4`) and reported beside theirs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "fleet.lua"


class WrkMissing(RuntimeError):
    """wrk is not installed and could not be installed."""


def ensure_wrk(say: Callable[[str], None] | None = None) -> str:
    """The path of wrk; installs Debian's package when it is missing and we may (root, apt).
    Figures (f) and (g) both drive their load with it."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        if say:
            say("installing wrk (apt-get install -y wrk)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "install", "-y", "-q", "wrk"],
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "wrk"],
        ):
            subprocess.run(command, env=env, capture_output=True, check=False)
            found = shutil.which("wrk")
            if found:
                return found
    raise WrkMissing("wrk is not installed (Debian: apt-get install wrk)")


@dataclass
class WrkRun:
    """What one wrk run reports: its tally, its errors and its own CPU."""

    started: float  # time.monotonic() just before wrk started
    ok: int  # requests acknowledged (202 from HQ; 200 and "errors":false from _bulk)
    refused: int  # answered with anything else
    per_request: int
    requests: int  # answers wrk read, whatever their status
    seconds: float
    errors: dict[str, int]
    latency_ms: dict[str, float]  # closed loop: from each request's send, not an intended time
    failures: list[str]
    built_events: int
    built_bytes: int
    cpu_s: float  # wrk's own utime + stime
    # Acknowledged events per 100 ms, keyed by the bucket's start (time.monotonic() seconds).
    buckets: dict[float, int] = field(repr=False)

    @property
    def events(self) -> int:
        return self.ok * self.per_request

    @property
    def event_bytes(self) -> float:
        return self.built_bytes / max(self.built_events, 1)

    def events_between(self, start: float, end: float) -> int:
        """Events acknowledged in [start, end) (bucket starts, multiples of 0.1 s)."""
        return sum(n for at, n in self.buckets.items() if start - 1e-6 <= at < end - 1e-6)

    @property
    def socket_errors(self) -> int:
        return sum(v for k, v in self.errors.items() if k != "status")


def measured(command: list[str]) -> tuple[int, bytes, bytes, float]:
    """Run `command` to its end: its exit code, stdout, stderr and own CPU-seconds (user +
    system, from the rusage of that one process)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    out = process.stdout.read()  # wrk writes little to stderr: no deadlock reading in turn
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)  # reaped here, with its own rusage
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, out, err, usage.ru_utime + usage.ru_stime


def run(
    url: str,
    config: Path,
    connections: int,
    seconds: int,
    threads: int = 2,
    timeout: int = 60,
) -> WrkRun:
    """Run wrk for `seconds` (blocking; call it in a thread)."""
    binary = ensure_wrk()
    command = [
        binary,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout}s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(config),
    ]
    started = time.monotonic()
    returncode, out, err, cpu_s = measured(command)
    line = next((x for x in out.splitlines() if x.startswith(b"FLEET-JSON ")), None)
    if returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({returncode}): {err.decode(errors='replace')[-500:]}"
            f"{out.decode(errors='replace')[-500:]}"
        )
    data = orjson.loads(line.removeprefix(b"FLEET-JSON "))
    return WrkRun(
        started=started,
        ok=data["ok"],
        refused=data["refused"],
        per_request=data["per_request"],
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["errors"],
        latency_ms={k: v / 1000 for k, v in data["latency_us"].items()},
        failures=data["failures"],
        built_events=data["built_events"],
        built_bytes=data["built_bytes"],
        cpu_s=cpu_s,
        buckets={int(k) / 10: v for k, v in data["buckets"].items()},
    )
