"""HQ raises its open-file limit when it starts, and says what it has: a fleet's agents each
keep a connection, and a limit left at 1024 would cap the fleet at about a thousand."""

from __future__ import annotations

import resource
from pathlib import Path

import httpx
import pytest

from logspace.ops.openfiles import target

from ..processes import hq_environ, start_hq

INFINITY = resource.RLIM_INFINITY


@pytest.mark.parametrize(
    ("soft", "hard", "wanted"),
    [
        (1024, 524288, 524288),  # systemd's defaults: up to the hard limit
        (1024, INFINITY, 1 << 20),  # no hard limit: as far as Linux allows by default
        (1024, 1 << 30, 1 << 20),
        (4096, 4096, 4096),  # nothing to raise
        (2 << 20, INFINITY, 2 << 20),  # never lowered
        (INFINITY, INFINITY, INFINITY),
    ],
)
def test_the_soft_limit_goes_up_to_the_hard_one(soft: int, hard: int, wanted: int) -> None:
    assert target(soft, hard) == wanted


def soft_limit_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-file limit in /proc")


def served(open_files: tuple[int, int]) -> tuple[int, float, str]:
    """Start `logspace serve` with these limits (and no Elasticsearch): its soft limit then,
    the limit `/metrics` shows, and what it logged."""
    environ = hq_environ(
        LOGSPACE_ES_URL="http://127.0.0.1:9",  # nothing listens: HQ starts all the same
        LOGSPACE_SPACE_TOKENS="development:development",
    )
    url, process = start_hq(environ, open_files=open_files)
    try:
        soft = soft_limit_of(process.pid)
        exposition = httpx.get(url + "/metrics", timeout=10).text
        [shown] = [
            float(line.split()[1])
            for line in exposition.splitlines()
            if line.startswith("logspace_open_files_limit ")
        ]
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    return soft, shown, output


def test_serve_raises_its_soft_limit_to_the_hard_one() -> None:
    soft, shown, output = served((256, 8192))

    assert soft == 8192
    assert shown == 8192
    assert "INFO logspace.ops.openfiles: open-file limit 8192 (raised from 256)" in output


def test_serve_warns_when_the_hard_limit_is_low_for_a_fleet() -> None:
    soft, shown, output = served((512, 512))

    assert soft == 512
    assert shown == 512
    assert "WARNING logspace.ops.openfiles: open-file limit 512: HQ can hold about" in output
    assert "raise the hard limit" in output
