"""Real `logspace serve` processes for tests, and free ports for them."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Mapping

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def hq_environ(**variables: str) -> dict[str, str]:
    """This process's environment without any LOGSPACE_* setting, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(variables)
    return env


def start_hq(
    env: Mapping[str, str],
    *args: str,
    ready_path: str = "/",
    timeout: float = 60,
    python: str = sys.executable,
    cwd: str | None = None,
    open_files: tuple[int, int] | None = None,
) -> tuple[str, subprocess.Popen[str]]:
    """`logspace serve` on a free port, run by `python` (with the soft and hard `open_files`
    limits, if given); returns once GET `ready_path` answers (200 where `ready_path` is not
    "/")."""
    port = free_port()

    def limited() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    process = subprocess.Popen(
        [python, "-m", "logspace", "serve", "--port", str(port), *args],
        env=dict(env),
        cwd=cwd,
        preexec_fn=limited if open_files else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            status = httpx.get(url + ready_path, timeout=2).status_code
            if ready_path == "/" or status == 200:
                return url, process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("HQ did not start listening")
