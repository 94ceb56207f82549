"""The Docker stack: docker-compose.yml, its no-security override, .env.example, the image,
and the stack's certificates (docker/certs.sh).

The compose file is checked twice: as YAML, always; and as `docker compose config` sees it
(interpolated with .env.example and merged with the override), where the docker CLI and its
compose plugin are installed; `docker compose config` needs no Docker engine. Building the
image needs an engine, so that test runs only where one answers. The stack itself has never
run here (no Docker engine): what TLS it promises is checked in the files, and
docker/certs.sh runs for real with the elasticsearch-certutil of the local distribution.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.clusters import SecureNode
from tests.conftest import ES_VERSION

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NO_SECURITY = ROOT / "docker-compose.no-security.yml"
ENV_EXAMPLE = ROOT / ".env.example"
LONG_RUNNING = ("elasticsearch", "kibana", "hq")
ONE_SHOT = ("certs", "es-users", "setup")
CA = "/certs/ca/ca.crt"


def check_stack(config: dict[str, Any]) -> None:
    """What the stack promises, in the compose file as written or as docker resolves it."""
    services = config["services"]
    assert sorted(services) == sorted(LONG_RUNNING + ONE_SHOT)
    assert services["elasticsearch"]["image"].endswith(f"/elasticsearch:{ES_VERSION}")
    assert services["es-users"]["image"] == services["elasticsearch"]["image"]
    assert services["certs"]["image"] == services["elasticsearch"]["image"]
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
    assert services["elasticsearch"]["depends_on"]["certs"]["condition"] == (
        "service_completed_successfully"
    )
    setup = " ".join(services["setup"]["command"])
    assert "logspace templates install" in setup
    assert "logspace kibana setup --url http" in setup
    assert "ready" in " ".join(services["hq"]["healthcheck"]["test"])
    # Named volumes keep Elasticsearch's and Kibana's data, and the certificates, across restarts.
    assert set(config["volumes"]) == {"es-data", "kibana-data", "certs", "certs-ca"}
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


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in service.get("environment", {}).items()}


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """target -> (source, read-only) of a service's volumes."""
    found = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            source, target, *mode = entry.split(":")
            found[target] = (source, mode == ["ro"])
        else:
            found[entry["target"]] = (entry["source"], bool(entry.get("read_only")))
    return found


def test_tls_is_on_everywhere_and_every_client_checks_the_ca() -> None:
    """Elasticsearch serves HTTPS and encrypts transport with the certificates of `certs`;
    Kibana, HQ and the one-shot services reach it over HTTPS trusting that CA, and Kibana
    serves HTTPS itself."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    es = environment(services["elasticsearch"])

    for layer in ("http", "transport"):
        assert es[f"xpack.security.{layer}.ssl.enabled"] == "true"
        assert es[f"xpack.security.{layer}.ssl.key"] == "certs/elasticsearch/elasticsearch.key"
        assert es[f"xpack.security.{layer}.ssl.certificate"] == (
            "certs/elasticsearch/elasticsearch.crt"
        )
        assert es[f"xpack.security.{layer}.ssl.certificate_authorities"] == "certs/ca/ca.crt"
    assert es["xpack.security.transport.ssl.verification_mode"] == "certificate"
    assert "https://localhost:9200" in " ".join(services["elasticsearch"]["healthcheck"]["test"])
    assert "--cacert config/certs/ca/ca.crt" in " ".join(
        services["elasticsearch"]["healthcheck"]["test"]
    )
    kibana = environment(services["kibana"])
    assert kibana["ELASTICSEARCH_HOSTS"] == "https://elasticsearch:9200"
    assert kibana["ELASTICSEARCH_SSL_CERTIFICATEAUTHORITIES"] == "config/certs/ca/ca.crt"
    assert kibana["SERVER_SSL_ENABLED"] == "true"
    assert kibana["SERVER_SSL_CERTIFICATE"] == "config/certs/kibana/kibana.crt"
    assert kibana["SERVER_SSL_KEY"] == "config/certs/kibana/kibana.key"
    assert "https://localhost:5601" in " ".join(services["kibana"]["healthcheck"]["test"])
    for name in ("hq", "setup"):
        assert environment(services[name])["LOGSPACE_ES_URL"] == "https://elasticsearch:9200"
        assert environment(services[name])["LOGSPACE_ES_CA_CERTS"] == CA
        assert "LOGSPACE_ES_VERIFY_CERTS" not in environment(services[name])
    users = environment(services["es-users"])
    assert (users["ES_URL"], users["ES_CA"]) == ("https://elasticsearch:9200", CA)
    assert "--url https://kibana:5601" in " ".join(services["setup"]["command"])
    # Plain HTTP only where HQ checks its own readiness inside its container.
    assert "http://" not in COMPOSE.read_text().replace("http://127.0.0.1:4567/health", "")


def test_the_certificates_are_shared_read_only_and_the_cas_key_is_not() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    where = {
        "elasticsearch": "/usr/share/elasticsearch/config/certs",
        "kibana": "/usr/share/kibana/config/certs",
        "hq": "/certs",
        "setup": "/certs",
        "es-users": "/certs",
    }

    assert mounts(services["certs"])["/certs"] == ("certs", False)
    assert mounts(services["certs"])["/ca"] == ("certs-ca", False)
    for name, target in where.items():
        assert mounts(services[name])[target] == ("certs", True), name
    for name, service in services.items():
        if name != "certs":
            assert "certs-ca" not in [source for source, _ in mounts(service).values()], name
    assert mounts(services["es-users"])["/role-hq.json"] == ("./index_templates/role-hq.json", True)


def test_the_env_example_sets_every_variable_the_stack_reads() -> None:
    used = interpolated_variables(COMPOSE.read_text())

    assert used <= set(env_example()), used - set(env_example())


def test_the_no_security_override_turns_security_and_tls_off_everywhere() -> None:
    services = yaml.safe_load(NO_SECURITY.read_text())["services"]

    es = environment(services["elasticsearch"])
    assert es["xpack.security.enabled"] == "false"
    assert es["xpack.security.http.ssl.enabled"] == "false"
    assert es["xpack.security.transport.ssl.enabled"] == "false"
    assert services["es-users"]["entrypoint"][0] == "echo"
    for name, variable in (
        ("kibana", "ELASTICSEARCH_USERNAME"),
        ("hq", "LOGSPACE_ES_USERNAME"),
        ("setup", "LOGSPACE_ES_USERNAME"),
    ):
        assert services[name]["environment"][variable] == "", name
    assert environment(services["kibana"])["ELASTICSEARCH_HOSTS"] == "http://elasticsearch:9200"
    assert environment(services["kibana"])["SERVER_SSL_ENABLED"] == "false"
    for name in ("hq", "setup"):
        assert environment(services[name])["LOGSPACE_ES_URL"] == "http://elasticsearch:9200"
    setup = " ".join(services["setup"]["command"])
    assert "--url http://kibana:5601" in setup
    assert "--all-spaces" not in setup, "no roles without security"
    for name in ("elasticsearch", "kibana"):
        assert "https" not in " ".join(services[name]["healthcheck"]["test"]), name


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


# -- the stack's certificates, made for real ------------------------------------------------


def java_home() -> str:
    """A Java 21+ for elasticsearch-certutil, looked for where scripts/es looks first."""
    candidates = [os.environ.get("ES_JAVA_HOME", ""), *sorted(glob.glob("/usr/lib/jvm/temurin-2*"))]
    for home in candidates:
        if home and os.access(f"{home}/bin/java", os.X_OK):
            return home
    pytest.fail("no Java 21+ for elasticsearch-certutil: set ES_JAVA_HOME")


def run_certs(secure_es: SecureNode, tmp_path: Path, **environ: str) -> list[str]:
    """docker/certs.sh with the local distribution's elasticsearch-certutil, as the `certs`
    service runs it with the image's."""
    home = secure_es.ca.parents[2] / f"elasticsearch-{ES_VERSION}"
    env = {
        "PATH": os.environ["PATH"],
        "ES_JAVA_HOME": java_home(),
        "CERTUTIL": str(home / "bin" / "elasticsearch-certutil"),
        "CA_DIR": str(tmp_path / "ca"),
        "CERTS_DIR": str(tmp_path / "certs"),
    }
    (tmp_path / "ca").mkdir(exist_ok=True)
    (tmp_path / "certs").mkdir(exist_ok=True)
    done = subprocess.run(
        [str(ROOT / "docker" / "certs.sh")], env=env | environ,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def openssl(*args: str) -> str:
    binary = shutil.which("openssl")
    assert binary
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_the_certs_script_makes_a_ca_and_certificates_once(
    secure_es: SecureNode, tmp_path: Path
) -> None:
    """Certificates for elasticsearch and kibana, signed by a CA of the stack's own, with the
    names the services use; the CA's key stays out of the shared directory; a second run makes
    nothing new; new host names make new certificates from the same CA."""
    first = run_certs(secure_es, tmp_path)
    certs = tmp_path / "certs"
    made = {p.relative_to(certs).as_posix(): p.stat().st_mode & 0o777 for p in certs.rglob("*")}
    again = run_certs(secure_es, tmp_path)
    before = (certs / "kibana" / "kibana.crt").read_bytes()
    named = run_certs(secure_es, tmp_path, CERT_DNS_NAMES="es.example.com,kibana.example.com")

    assert first[:2] == [
        "certs: made a new CA",
        "certs: made certificates for elasticsearch and kibana",
    ]
    assert made == {
        "ca": 0o755, "ca/ca.crt": 0o644, "instances.yml": 0o644,
        "elasticsearch": 0o755, "elasticsearch/elasticsearch.crt": 0o644,
        "elasticsearch/elasticsearch.key": 0o640,
        "kibana": 0o755, "kibana/kibana.crt": 0o644, "kibana/kibana.key": 0o640,
    }  # fmt: skip
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert again == [f"certs: ready in {certs} (CA: {certs}/ca/ca.crt)"]
    assert named[0] == "certs: made certificates for elasticsearch and kibana"
    assert (certs / "kibana" / "kibana.crt").read_bytes() != before
    for service in ("elasticsearch", "kibana"):
        crt = str(certs / service / f"{service}.crt")
        assert openssl("verify", "-CAfile", str(certs / "ca" / "ca.crt"), crt).endswith(": OK\n")
        names = openssl("x509", "-in", crt, "-noout", "-ext", "subjectAltName")
        for name in (f"DNS:{service}", "DNS:localhost", "IP Address:127.0.0.1"):
            assert name in names, (service, names)
        assert "DNS:es.example.com" in names
        key_of_cert = openssl("x509", "-in", crt, "-noout", "-pubkey")
        key = openssl("pkey", "-in", str(certs / service / f"{service}.key"), "-pubout")
        assert key_of_cert == key
