"""Agents as processes: `logspace agent os` and a library agent against a real `logspace serve`,
with HQ killed and restarted and an agent killed and restarted in between."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..processes import free_port


class HQProcess:
    """`logspace serve` on a fixed port, which tests stop and start again."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "logspace", "serve", "--port", str(self.port)],
            env=self.environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url, timeout=1)
                return
            except httpx.TransportError:
                assert self.process.poll() is None, "HQ exited"
                time.sleep(0.1)
        pytest.fail("HQ did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def hq_process(es_url: str, prefix: str) -> Iterator[HQProcess]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")}
    environ.update(
        LOGSPACE_ES_URL=es_url,
        LOGSPACE_SPACE_TOKENS="development:development",
        LOGSPACE_INDEX_PREFIX=prefix,
    )
    hq = HQProcess(environ)
    yield hq
    hq.kill()


def agent_environ(hq: HQProcess, queue_dir: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")}
    environ.update(
        LOGSPACE_AGENT_HQ_URL=hq.url,
        LOGSPACE_AGENT_TOKEN="development",
        LOGSPACE_AGENT_QUEUE_DIR=str(queue_dir),
        LOGSPACE_AGENT_BATCH_MAX_AGE="0.1",
        LOGSPACE_AGENT_BACKOFF_INITIAL="0.05",
        LOGSPACE_AGENT_BACKOFF_MAX="0.5",
        LOGSPACE_AGENT_SHUTDOWN_TIMEOUT="30",
    )
    return environ


def reported(stderr: str) -> dict[str, int]:
    match = re.search(r"sent (\d+), dropped (\d+), queued (\d+)", stderr)
    assert match, stderr
    return dict(zip(("sent", "dropped", "queued"), map(int, match.groups()), strict=True))


def test_logspace_agent_os_runs_cycles_and_its_events_are_stored(
    hq_process: HQProcess, stored: Any, tmp_path: Path
) -> None:
    hq_process.start()

    result = subprocess.run(
        [sys.executable, "-m", "logspace", "agent", "os", "--interval", "0.2", "--cycles", "2",
         "--agents", "cpu,memory,disk,swap", "--marker", "cli-test"],
        env=agent_environ(hq_process, tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    events = stored()
    assert reported(result.stderr) == {"sent": len(events), "dropped": 0, "queued": 0}
    types = [e["type"] for e in events]
    assert types.count("os/cpu") == types.count("os/memory") == types.count("os/swap") == 2
    assert types.count("os/disk") >= 2
    assert {e["marker"] for e in events} == {"cli-test"}
    assert (tmp_path / "os.sqlite3").exists()


def test_the_os_monitor_survives_an_hq_outage_and_stops_cleanly_on_sigterm(
    hq_process: HQProcess, stored: Any, tmp_path: Path
) -> None:
    hq_process.start()
    agent = subprocess.Popen(
        [sys.executable, "-m", "logspace", "agent", "os", "--interval", "0.2", "--agents", "cpu"],
        env=agent_environ(hq_process, tmp_path), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: len(stored()) >= 2)
        hq_process.kill()
        stored_before_outage = len(stored())
        time.sleep(1.5)  # the agent goes on producing while HQ is down
        hq_process.start()
        wait_for(lambda: len(stored()) > stored_before_outage + 5)
    finally:
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=60)

    assert agent.returncode == 0, stderr
    counts = reported(stderr)
    events = stored()
    assert counts == {"sent": len(events), "dropped": 0, "queued": 0}
    assert len({e["id"] for e in events}) == len(events)
    assert "cannot be reached" in stderr  # it did see the outage


def test_an_unusable_queue_directory_stops_the_agent_with_a_message(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")}

    result = subprocess.run(
        [sys.executable, "-m", "logspace", "agent", "os", "--token", "t",
         "--queue-dir", str(blocker / "queue")],
        env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 1
    assert "cannot open the queue" in result.stderr


def test_invalid_agent_settings_stop_the_command_naming_the_setting(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOGSPACE_")}
    environ["LOGSPACE_AGENT_BATCH_MAX_EVENTS"] = "many"

    result = subprocess.run(
        [sys.executable, "-m", "logspace", "agent", "os", "--token", "t"],
        env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    missing_token = subprocess.run(
        [sys.executable, "-m", "logspace", "agent", "os"],
        env={k: v for k, v in environ.items() if not k.startswith("LOGSPACE_")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 2
    assert "LOGSPACE_AGENT_BATCH_MAX_EVENTS='many' is not a valid integer" in result.stderr
    assert missing_token.returncode == 2
    assert "a space token is required" in missing_token.stderr


RESTARTING_AGENT = """
import sys, time
from logspace.agent import AgentConfig, EventBuilder, Sender
hq_url, queue_dir, first, last, mode = sys.argv[1:]
config = AgentConfig(token="development", hq_url=hq_url, queue_dir=queue_dir,
                     batch_max_age=0, backoff_initial=0.05, backoff_max=0.5)
sender = Sender(config).start()
for n in range(int(first), int(last)):
    sender.send(EventBuilder("demo/restart", id=f"restart-{n}").long("n", n).build())
while sender.stats.buffered:  # on disk only once the buffer's group commit is done
    time.sleep(0.01)
print("queued", flush=True)
if mode == "hang":
    time.sleep(600)
delivered = sender.flush(60)
stats = sender.stats
sender.close()
print(delivered, stats.enqueued, stats.sent, stats.dropped, stats.queued, flush=True)
"""


def test_events_queued_by_a_killed_agent_arrive_exactly_once_after_a_restart(
    hq_process: HQProcess, stored: Any, tmp_path: Path
) -> None:
    """HQ is down; the agent queues 25 events and is killed (SIGKILL). A new agent process on
    the same queue sends 15 more once HQ is up: all 40 arrive, none twice."""
    script = [sys.executable, "-c", RESTARTING_AGENT, hq_process.url, str(tmp_path)]
    first = subprocess.Popen(
        [*script, "0", "25", "hang"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "queued"
    first.kill()
    first.wait()

    hq_process.start()
    second = subprocess.run(
        [*script, "25", "40", "flush"], capture_output=True, text=True, timeout=120
    )

    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == "True 40 40 0 0"
    assert sorted(e["id"] for e in stored()) == sorted(f"restart-{n}" for n in range(40))


def wait_for(condition: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
