"""The `logspace` command end to end: a real HQ process, the seed's curl, a real node."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .processes import hq_environ, start_hq

SEED_REQUEST = Path(__file__).parent / "data" / "seed-request.json"


@pytest.fixture
def environ(es_url: str, prefix: str) -> dict[str, str]:
    return hq_environ(
        LOGSPACE_ES_URL=es_url,
        LOGSPACE_SPACE_TOKENS="development:development",
        LOGSPACE_INDEX_PREFIX=prefix,
    )


@pytest.fixture
def server(environ: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    url, process = start_hq(environ)
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
