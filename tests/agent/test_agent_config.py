"""Agent configuration from code, environment and a TOML file; the package's boundaries."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

import logspace.agent
from logspace.agent import AgentConfig, AgentConfigError
from logspace.agent.config import AGENT_SETTINGS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_code_needs_only_a_token() -> None:
    config = AgentConfig(token="t")
    assert config.hq_urls == ["http://127.0.0.1:4567"]
    assert config.queue_path.name == "agent.sqlite3"
    assert config.gzip is True


def test_the_environment_overrides_the_file_and_flags_override_both(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(
        'hq_url = "http://file:4567"\ntoken = "from-file"\nbatch_max_events = 10\ngzip = true\n'
    )
    environ = {
        "LOGSPACE_AGENT_CONFIG": str(file),
        "LOGSPACE_AGENT_TOKEN": "from-env",
        "LOGSPACE_AGENT_QUEUE_DIR": str(tmp_path / "q"),
        "LOGSPACE_SPACE_TOKENS": "ignored: an HQ setting",
    }

    config = AgentConfig.from_env(environ, hq_url="http://flag:1/", marker=None)

    assert config.hq_url == "http://flag:1"
    assert config.token == "from-env"
    assert (config.batch_max_events, config.gzip, config.marker) == (10, True, None)
    assert config.queue_path == tmp_path / "q" / "agent.sqlite3"
    assert AgentConfig.from_file(file).token == "from-file"


def test_defaults_give_way_to_the_file(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text('token = "t"\nqueue_name = "mine"\n')
    environ = {"LOGSPACE_AGENT_CONFIG": str(file)}
    defaults = {"LOGSPACE_AGENT_QUEUE_NAME": "os"}

    assert AgentConfig.from_env(environ, defaults=defaults).queue_name == "mine"
    assert AgentConfig.from_env({"LOGSPACE_AGENT_TOKEN": "t"}, defaults=defaults).queue_name == "os"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "a space token is required"),
        ({"LOGSPACE_AGENT_HQ_URL": "hq:4567"}, "LOGSPACE_AGENT_HQ_URL='hq:4567' is not an http"),
        ({"LOGSPACE_AGENT_BATCH_MAX_EVENTS": "ten"}, "'ten' is not a valid integer"),
        ({"LOGSPACE_AGENT_BATCH_MAX_EVENTS": "0"}, "must be greater than zero"),
        ({"LOGSPACE_AGENT_GZIP": "maybe"}, "LOGSPACE_AGENT_GZIP='maybe' is not a boolean"),
        ({"LOGSPACE_AGENT_QUEUE_FULL_POLICY": "block"}, "not one of drop-oldest, drop-newest"),
        ({"LOGSPACE_AGENT_QUEUE_NAME": "a/b"}, "is not a valid queue name"),
        ({"LOGSPACE_AGENT_BACKOFF_MAX": "0.5"}, "must not be below backoff_initial"),
        ({"LOGSPACE_AGENT_CONFIG": "/nonexistent.toml"}, "cannot be read"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(
    environ: dict[str, str], message: str
) -> None:
    if "LOGSPACE_AGENT_TOKEN" not in environ and environ:
        environ = {"LOGSPACE_AGENT_TOKEN": "t", **environ}
    with pytest.raises(AgentConfigError, match=message):
        AgentConfig.from_env(environ)


def test_flags_are_named_in_errors() -> None:
    with pytest.raises(AgentConfigError, match="--batch-max-age='soon' is not a number"):
        AgentConfig.from_env({"LOGSPACE_AGENT_TOKEN": "t"}, batch_max_age="soon")


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text('token = "t"\nhq = "http://x"\n')
    with pytest.raises(AgentConfigError, match="unknown setting 'hq'"):
        AgentConfig.from_file(file)


def test_every_field_has_exactly_one_setting() -> None:
    assert sorted(s.field for s in AGENT_SETTINGS) == sorted(f.name for f in fields(AgentConfig))


@pytest.mark.parametrize("name", [s.env for s in AGENT_SETTINGS])
def test_every_agent_setting_is_in_the_agent_docs(name: str) -> None:
    assert f"`{name}`" in (DOCS / "agents.md").read_text()


def test_the_public_names_are_exactly_the_curated_ones() -> None:
    public = {name for name in vars(logspace.agent) if not name.startswith("_")}
    modules = {name for name in public if isinstance(getattr(logspace.agent, name), type(sys))}
    assert public - modules == set(logspace.agent.__all__)


def test_the_agent_package_imports_neither_starlette_nor_elasticsearch() -> None:
    code = (
        "import sys, logspace.agent, logspace.agent.cli; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('starlette', 'elasticsearch', 'elastic_transport', 'uvicorn')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
