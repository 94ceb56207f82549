"""The Docker stack: docker-compose.yml, its no-security override, .env.example, the image.

The compose file is checked twice: as YAML, always; and as `docker compose config` sees it
(interpolated with .env.example and merged with the override), where the docker CLI and its
compose plugin are installed; `docker compose config` needs no Docker engine. Building the
image needs an engine, so that test runs only where one answers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.conftest import ES_VERSION

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NO_SECURITY = ROOT / "docker-compose.no-security.yml"
ENV_EXAMPLE = ROOT / ".env.example"
LONG_RUNNING = ("elasticsearch", "kibana", "hq")
ONE_SHOT = ("es-users", "setup")


def check_stack(config: dict[str, Any]) -> None:
    """What the stack promises, in the compose file as written or as docker resolves it."""
    services = config["services"]
    assert sorted(services) == sorted(LONG_RUNNING + ONE_SHOT)
    assert services["elasticsearch"]["image"].endswith(f"/elasticsearch:{ES_VERSION}")
    assert services["es-users"]["image"] == services["elasticsearch"]["image"]
    assert services["kibana"]["image"] == f"docker.elastic.co/kibana/kibana:{ES_VERSION}"
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"], name
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no", name
    # HQ and its setup run from the image built from this repository.
    for name in ("hq", "setup"):
        assert "build" in services[name], name
        assert services[name]["image"] == services["hq"]["image"]
    hq_needs = services["hq"]["depends_on"]
    assert hq_needs["elasticsearch"]["condition"] == "service_healthy"
    assert hq_needs["es-users"]["condition"] == "service_completed_successfully"
    assert services["kibana"]["depends_on"]["es-users"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["setup"]["depends_on"]["kibana"]["condition"] == "service_healthy"
    setup = " ".join(services["setup"]["command"])
    assert "logspace templates install" in setup
    assert "logspace kibana setup --url http://kibana:5601" in setup
    assert "ready" in " ".join(services["hq"]["healthcheck"]["test"])
    # Named volumes keep Elasticsearch's and Kibana's data across restarts.
    assert set(config["volumes"]) == {"es-data", "kibana-data"}
    for name, volume, target in (
        ("elasticsearch", "es-data", "/usr/share/elasticsearch/data"),
        ("kibana", "kibana-data", "/usr/share/kibana/data"),
    ):
        assert (volume, target) in [_volume(v) for v in services[name]["volumes"]], name


def _volume(entry: Any) -> tuple[str, str]:
    if isinstance(entry, str):
        source, target = entry.split(":")[:2]
        return source, target
    return entry["source"], entry["target"]


def interpolated_variables(text: str) -> set[str]:
    return set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def test_the_compose_file_describes_the_stack() -> None:
    check_stack(yaml.safe_load(COMPOSE.read_text()))


def test_security_is_on_with_every_password_from_the_env_file() -> None:
    config = yaml.safe_load(COMPOSE.read_text())
    services = config["services"]
    text = COMPOSE.read_text()

    assert services["elasticsearch"]["environment"]["xpack.security.enabled"] == "true"
    assert services["kibana"]["environment"]["ELASTICSEARCH_USERNAME"] == "kibana_system"
    for variable in ("ELASTIC_PASSWORD", "KIBANA_PASSWORD", "LOGSPACE_ES_PASSWORD"):
        # Required: compose refuses to start without them instead of running open.
        assert f"${{{variable}:?" in text, variable
    hq = services["hq"]["environment"]
    assert hq["LOGSPACE_ES_USERNAME"] == "${LOGSPACE_ES_USERNAME:-logspace_hq}"
    assert hq["LOGSPACE_SPACE_TOKENS"].startswith("${LOGSPACE_SPACE_TOKENS:?")
    assert "ELASTIC_PASSWORD" not in str(hq), "HQ must not run as the superuser"


def test_the_env_example_sets_every_variable_the_stack_reads() -> None:
    used = interpolated_variables(COMPOSE.read_text())

    assert used <= set(env_example()), used - set(env_example())


def test_the_no_security_override_turns_security_off_everywhere() -> None:
    services = yaml.safe_load(NO_SECURITY.read_text())["services"]

    assert services["elasticsearch"]["environment"]["xpack.security.enabled"] == "false"
    assert services["es-users"]["entrypoint"][0] == "echo"
    for name, variable in (
        ("kibana", "ELASTICSEARCH_USERNAME"),
        ("hq", "LOGSPACE_ES_USERNAME"),
        ("setup", "LOGSPACE_ES_USERNAME"),
    ):
        assert services[name]["environment"][variable] == "", name


def _compose_plugin() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False
    )
    return docker if probe.returncode == 0 else None


def docker_compose_config(*files: Path) -> dict[str, Any]:
    docker = _compose_plugin()
    if docker is None:
        pytest.skip("the docker CLI with its compose plugin is not installed")
    arguments = [docker, "compose", "--env-file", str(ENV_EXAMPLE)]
    for file in files:
        arguments += ["-f", str(file)]
    result = subprocess.run(
        [*arguments, "config", "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = orjson.loads(result.stdout)
    return config


def test_docker_compose_accepts_the_stack() -> None:
    config = docker_compose_config(COMPOSE)

    check_stack(config)
    environment = config["services"]["hq"]["environment"]
    assert environment["LOGSPACE_SPACE_TOKENS"] == env_example()["LOGSPACE_SPACE_TOKENS"]
    assert config["services"]["hq"]["command"] == ["logspace", "serve", "--workers", "2"]


def test_docker_compose_accepts_the_stack_without_security() -> None:
    config = docker_compose_config(COMPOSE, NO_SECURITY)

    check_stack(config)
    services = config["services"]
    assert services["elasticsearch"]["environment"]["xpack.security.enabled"] == "false"
    assert services["hq"]["environment"]["LOGSPACE_ES_USERNAME"] == ""


def _docker_engine() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run(
        [docker, "info"], capture_output=True, text=True, timeout=60, check=False
    )
    return docker if probe.returncode == 0 else None


def test_the_image_installs_hq_from_its_wheel() -> None:
    """Checked statically (no engine here): the image installs the wheel, never a checkout, so
    it relies on the package data that tests/test_package.py checks for real."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip wheel" in dockerfile
    assert "pip install /wheel/" in dockerfile
    assert "pip install -e" not in dockerfile
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "COPY logspace/" not in final_stage


def test_the_image_builds_and_finds_its_templates_and_kibana_objects() -> None:
    docker = _docker_engine()
    if docker is None:
        pytest.skip("no Docker engine answers here (docker info failed)")
    tag = f"logspace-hq-test:{uuid.uuid4().hex[:8]}"
    try:
        build = subprocess.run(
            [docker, "build", "-t", tag, str(ROOT)],
            capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        assert build.returncode == 0, build.stderr[-3000:]
        check = subprocess.run(
            [
                docker, "run", "--rm", tag, "python", "-c",
                "from logspace.elastic import templates; from logspace.ops import kibana; "
                "print(len(templates.load('x')), len(kibana.load('x')))",
            ],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert check.returncode == 0, check.stderr
        assert check.stdout.split() == ["3", "7"]
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=300, check=False)
