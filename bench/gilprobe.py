"""What the request agent's threads cost an application thread's wake-ups; a diagnostic, never
a figure.

`python -m bench.gilprobe` runs, in one process, a thread standing in for an application under
a light load: it sleeps 0.7 ms, then hands one request through `ASGIMiddleware` (a trivial
ASGI app that never suspends), over and over, and records how late each sleep ends. With the
agent, the middleware's `Sender` ships to the stub HQ (`bench.apps:hq_stub`, started on a free
port); without it, the app runs alone. A sleep ends late when the thread must wait for the GIL
that the sender's threads hold, which is what g3's light load feels. Arms alternate, plain and
agent, BENCH_PROBE_ROUNDS times (3) for BENCH_PROBE_SECONDS each (10); each arm is a fresh
process. It prints the lateness's p50, p99 and p99.9 and each thread's CPU.

A tool for comparing changes to the agent within minutes on one machine: its p99 moves by a
factor of two with a noisy neighbour, so alternate, repeat, and read the plain arm too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .documents import TOKEN
from .procs import ROOT, free_port, wait_http

_SLEEP = 0.0007


def _arm(agent: bool, hq_url: str, seconds: float) -> str:
    """One arm in this process: what it prints."""
    from logspace.agent import AgentConfig, ASGIMiddleware, Sender

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        return None

    sender = None
    handler: Any = app
    if agent:
        queue_dir = Path(tempfile.mkdtemp())
        config = AgentConfig(token=TOKEN, hq_url=hq_url, queue_dir=queue_dir, queue_name="probe")
        sender = Sender(config).start()
        handler = ASGIMiddleware(app, sender)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5555),
        "headers": [(b"host", b"app.example")],
    }
    late: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.perf_counter()
        time.sleep(_SLEEP)
        late.append(time.perf_counter() - started - _SLEEP)
        call = handler(scope, receive, send)
        with contextlib.suppress(StopIteration):
            call.send(None)  # the app never suspends: one step runs the request
    threads = _thread_cpu(seconds)
    if sender is not None:
        sender.close()
    late.sort()
    n = len(late)

    def at(share: float) -> float:
        return late[min(n - 1, int(share * n))] * 1000

    arm = "agent" if agent else "plain"
    return (
        f"{arm:5} {n} wake-ups, late p50 {at(0.5):.3f} ms, p99 {at(0.99):.3f}, "
        f"p99.9 {at(0.999):.3f}; CPU ms/s per thread: {threads}"
    )


def _thread_cpu(seconds: float) -> str:
    """Each thread's CPU per second of the arm, from /proc (the main thread first)."""
    found = []
    for task in sorted(Path(f"/proc/{os.getpid()}/task").iterdir(), key=lambda p: int(p.name)):
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])
        found.append(f"{ticks / os.sysconf('SC_CLK_TCK') / seconds * 1000:.0f}")
    return " ".join(found)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "arm":
        print(_arm(sys.argv[2] == "agent", os.environ["BENCH_PROBE_HQ"], float(sys.argv[3])))
        return 0
    rounds = int(os.environ.get("BENCH_PROBE_ROUNDS", "3"))
    seconds = float(os.environ.get("BENCH_PROBE_SECONDS", "10"))
    port = free_port()
    stub = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "bench.apps:hq_stub", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        cwd=ROOT,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        env = {**os.environ, "BENCH_PROBE_HQ": f"http://127.0.0.1:{port}"}
        for _ in range(rounds):
            for arm in ("plain", "agent"):
                command = [sys.executable, "-m", "bench.gilprobe", "arm", arm, str(seconds)]
                subprocess.run(command, cwd=ROOT, env=env, check=True)
    finally:
        stub.terminate()
        stub.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
