"""The `logspace` command end to end: a real HQ process, the seed's curl, a real node."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

SEED_REQUEST = Path(__file__).parent / "data" / "seed-request.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def environ(es_url: str, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")}
    env.update(
        LOGSPACE_ES_URL=es_url,
        LOGSPACE_SPACE_TOKENS="development:development",
        LOGSPACE_INDEX_PREFIX=prefix,
    )
    return env


@pytest.fixture
def server(environ: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "logspace", "serve", "--port", str(port)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.1)
    yield url, process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_serve_answers_the_seed_curl_with_202_and_stores_both_events(
    server: tuple[str, subprocess.Popen[str]], stored: Any
) -> None:
    url, _ = server
    curl = shutil.which("curl")
    assert curl, "the seed's sample call uses curl"

    result = subprocess.run(
        [
            curl, "-s", "-o", "/dev/null", "-w", "%{http_code}",
            f"{url}/events", "-X", "PUT", "-d", f"@{SEED_REQUEST}",
            "--header", "Content-Type:application/json",
            "--header", "logspace.space-token:development",
        ],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip

    assert result.stdout == "202"
    assert sorted(e["type"] for e in stored({"term": {"space": "development"}})) == [
        "os/cpu",
        "os/memory",
    ]


def test_serve_stops_cleanly_on_sigterm(server: tuple[str, subprocess.Popen[str]]) -> None:
    _, process = server

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)

    # Uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in output


def test_templates_install_reports_each_template(environ: dict[str, str], prefix: str) -> None:
    """It needs no space tokens: it only talks to Elasticsearch."""
    del environ["LOGSPACE_SPACE_TOKENS"]
    command = [sys.executable, "-m", "logspace", "templates", "install"]

    first = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60)
    second = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60)

    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"component template {prefix}-mappings: installed",
        f"component template {prefix}-settings: installed",
        f"index template {prefix}: installed",
    ]
    assert second.stdout.count(": unchanged") == 3


def test_invalid_settings_stop_the_command_with_the_setting_named(
    environ: dict[str, str],
) -> None:
    environ["LOGSPACE_PORT"] = "ten"

    result = subprocess.run(
        [sys.executable, "-m", "logspace", "serve"],
        env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 2
    assert "LOGSPACE_PORT='ten' is not a valid integer" in result.stderr
