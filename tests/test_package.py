"""HQ installed from its wheel, into a virtualenv outside the checkout, works as a checkout does:
it finds its index templates, Kibana's saved objects and the C fast path inside the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .processes import hq_environ, start_hq

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "data" / "seed-request.json"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtualenv with nothing but the built wheel and its dependencies."""
    work = tmp_path_factory.mktemp("wheel")
    run = {"check": True, "capture_output": True, "text": True, "timeout": 600}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(work), str(ROOT)],
        **run,
    )
    (wheel,) = work.glob("logspace-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], **run)
    python = work / "venv" / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel)], **run)
    return python


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory with no checkout in it or above it."""
    assert not (tmp_path / "index_templates").exists()
    return tmp_path


def test_the_wheel_holds_the_templates_the_saved_objects_and_the_fast_path(
    installed: Path, outside: Path
) -> None:
    """The installed package reads its data from site-packages, not from a checkout."""
    shown = subprocess.run(
        [
            installed,
            "-c",
            "import logspace, logspace.elastic.templates as t, logspace.ops.kibana as k,"
            " logspace.ingest.transcoder as c; print(logspace.__file__);"
            " print(len(t.load('x'))); print(len(k.load('x'))); print(c.AVAILABLE)",
        ],
        cwd=outside,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert "site-packages" in shown[0]
    assert int(shown[1]) >= 2
    assert int(shown[2]) >= 2
    assert shown[3] == "True"


def test_templates_install_from_the_wheel(
    installed: Path, outside: Path, es: httpx.Client, es_url: str, prefix: str
) -> None:
    """`logspace templates install` installs the index template the wheel carries."""
    env = hq_environ(LOGSPACE_ES_URL=es_url, LOGSPACE_INDEX_PREFIX=prefix)
    done = subprocess.run(
        [installed.parent / "logspace", "templates", "install"],
        env=env,
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert es.get(f"/_index_template/{prefix}").status_code == 200


def test_serve_from_the_wheel_stores_the_seed_batch(
    installed: Path, outside: Path, es: httpx.Client, es_url: str, prefix: str
) -> None:
    """`logspace serve` from the wheel answers the seed's sample call with 202 and stores it."""
    env = hq_environ(
        LOGSPACE_ES_URL=es_url,
        LOGSPACE_INDEX_PREFIX=prefix,
        LOGSPACE_SPACE_TOKENS="development:development",
        LOGSPACE_CONTROL_INDEX=f"{prefix}.control",
    )
    url, process = start_hq(
        env, ready_path="/health/ready", python=str(installed), cwd=str(outside)
    )
    try:
        answer = httpx.put(
            f"{url}/events",
            content=SEED.read_bytes(),
            headers={"content-type": "application/json", "logspace.space-token": "development"},
        )
        assert answer.status_code == 202, answer.text
    finally:
        process.terminate()
        process.wait(timeout=30)
    es.post(f"/{prefix}-*/_refresh")
    assert es.get(f"/{prefix}-*/_count").json()["count"] == 2
