"""The processes a benchmark watches: CPU and memory from /proc, HQ as a real `logspace serve`,
and the dedicated Elasticsearch node from `scripts/es`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a process so far; 0 when there is no such process to watch."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # Fields 14 and 15 of stat(5); [2] after the command name is field 3.
    return (int(fields[11]) + int(fields[12])) / _TICKS


@contextmanager
def yielding(pid: int | None) -> Iterator[bool]:
    """Every thread of a process under SCHED_IDLE for the block, then back under its own policy:
    it runs only on cores nothing else wants, and a woken thread of any other process takes
    the core from it at once (at nice 19 it would keep the core for the rest of its time
    slice, a millisecond or two). Yields whether that could be done (it takes root, or
    CAP_SYS_NICE, to give the policy back)."""
    before: dict[int, tuple[int, int]] = {}
    tids = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()] if pid is not None else []
    allowed = True
    try:
        for tid in tids:
            try:
                before[tid] = (os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority)
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            except ProcessLookupError:
                continue  # a thread that ended meanwhile
    except PermissionError:
        allowed = False
    try:
        yield allowed and bool(before)
    finally:
        for tid, (policy, priority) in before.items():
            with suppress(ProcessLookupError, PermissionError):
                os.sched_setscheduler(tid, policy, os.sched_param(priority))


def descendants(pid: int) -> list[int]:
    """The pids of a process's children, their children, and so on (from /proc)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            pending += children
    return found


def run_queue_seconds(pid: int | None) -> float:
    """How long the threads of a process have waited on a run queue for a CPU so far
    (/proc/<pid>/task/*/schedstat, second field): on a busy box, the time a request waits
    for HQ to be scheduled at all."""
    if pid is None:
        return 0.0
    waited = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        try:
            waited += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return waited / 1e9


def tree_cpu_seconds(pid: int | None) -> float:
    """`cpu_seconds` of a process and all its descendants (HQ with workers, say)."""
    if pid is None:
        return 0.0
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in descendants(pid))


def open_fds(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        return 0


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections of a process to `port` (HQ's pool towards Elasticsearch)."""
    import psutil

    try:
        connections = psutil.Process(pid).net_connections("tcp")
    except psutil.Error:
        return 0
    return sum(
        1
        for c in connections
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


class SyscallCount:
    """`perf stat` on a running process: its fsync and fdatasync calls and context switches,
    counted by kernel tracepoints (nearly free). Empty where perf is missing or not allowed."""

    EVENTS: ClassVar[dict[str, str]] = {
        "syscalls:sys_enter_fsync": "fsync calls",
        "syscalls:sys_enter_fdatasync": "fdatasync calls",
        "context-switches": "context switches",
    }

    def __init__(self, pid: int | None, output: Path) -> None:
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None
        if pid is None or not shutil.which("perf"):
            return
        command = ["perf", "stat", "-x", ",", "-o", str(output), "-p", str(pid)]
        for event in self.EVENTS:
            command += ["-e", event]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def stop(self) -> dict[str, float]:
        if self.process is None:
            return {}
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return {}
        counts = {}
        try:
            lines = self.output.read_text().splitlines()
        except OSError:
            return {}
        for line in lines:
            fields = line.split(",")
            if len(fields) > 2 and fields[2] in self.EVENTS and fields[0].isdigit():
                counts[self.EVENTS[fields[2]]] = float(fields[0])
        return counts


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 - our own local URL
            return
        except OSError as error:
            # Any HTTP answer (even 404) means the server is up.
            if getattr(error, "code", None) is not None:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {seconds} s") from error
            time.sleep(0.2)


class HQProcess:
    """`python -m logspace serve` (uvloop + httptools, one worker) on a port of its own.
    BENCH_HQ_MODULE=bench.hqdiag runs the diagnostic variant instead, for experiments."""

    def __init__(self, es_url: str, prefix: str, log: Path, **env: str) -> None:
        module = os.environ.get("BENCH_HQ_MODULE", "logspace")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {
            **os.environ,
            "LOGSPACE_ES_URL": es_url,
            "LOGSPACE_INDEX_PREFIX": prefix,
            "LOGSPACE_SPACE_TOKENS": "bench:bench-token",
            **env,
        }
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "serve", "--port", str(self.port)],
            env=environ,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid
        try:
            wait_http(self.url + "/")
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class DedicatedNode:
    """The benchmark's own Elasticsearch node, started with `scripts/es` unless one is given.

    A node this object started is stopped again by `stop`; a given URL is left alone.
    """

    def __init__(self, port: int, heap: str) -> None:
        self.port = port
        self.heap = heap
        self.started_here = False
        self.url = os.environ.get("LOGSPACE_ES_URL", "").rstrip("/")

    def start(self) -> str:
        if self.url:
            return self.url
        env = {**os.environ, "LOGSPACE_ES_PORT": str(self.port), "LOGSPACE_ES_HEAP": self.heap}
        script = str(ROOT / "scripts" / "es")
        running = subprocess.run([script, "status"], env=env, capture_output=True, check=False)
        started = subprocess.run(
            [script, "start"], env=env, capture_output=True, text=True, check=True
        )
        self.started_here = running.returncode != 0
        self.url = started.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self) -> None:
        if self.started_here:
            env = {**os.environ, "LOGSPACE_ES_PORT": str(self.port)}
            subprocess.run([str(ROOT / "scripts" / "es"), "stop"], env=env, check=False)

    def pid(self) -> int | None:
        """The node's pid from `scripts/es`'s pid file for the URL's port, or LOGSPACE_ES_PID."""
        if os.environ.get("LOGSPACE_ES_PID"):
            return int(os.environ["LOGSPACE_ES_PID"])
        port = self.url.rpartition(":")[2]
        base = Path(os.environ.get("LOGSPACE_ES_DIR", "/var/tmp/logspace-es"))  # noqa: S108 - scripts/es's
        try:
            return int((base / f"es-{port}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
