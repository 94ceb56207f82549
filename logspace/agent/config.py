"""AgentConfig: where and how an agent sends its events; from code, environment or a TOML file.

`AgentConfig.from_env(mapping)` reads `LOGSPACE_AGENT_*` variables over the TOML file named by
`LOGSPACE_AGENT_CONFIG`; it never reads `os.environ` itself. Every setting is declared once in
`AGENT_SETTINGS`, which also feeds the test that keeps `docs/agents.md` complete.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..textvalues import boolean as _boolean
from ..textvalues import non_negative_float as _non_negative_float
from ..textvalues import optional_text as _optional_text
from ..textvalues import positive_float as _positive_float
from ..textvalues import positive_int as _positive_int
from ..textvalues import read_toml
from ..textvalues import text as _text
from ..textvalues import urls as _urls

__all__ = ["AGENT_SETTINGS", "AgentConfig", "AgentConfigError", "FullPolicy", "default_queue_dir"]

FullPolicy = Literal["drop-oldest", "drop-newest"]

CONFIG_FILE_VARIABLE = "LOGSPACE_AGENT_CONFIG"
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")


class AgentConfigError(ValueError):
    """A setting the agent cannot use; the message names the setting."""


def default_queue_dir() -> Path:
    """`$XDG_STATE_HOME/logspace/agent`, else `~/.local/state/logspace/agent`."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "logspace" / "agent"


def _path(name: str, value: str) -> Path | None:
    return Path(value).expanduser() if value else None


def _queue_name(name: str, value: str) -> str:
    if not _QUEUE_NAME.fullmatch(value):
        raise AgentConfigError(
            f"{name}={value!r} is not a valid queue name (letters, digits, '_', '-', '.')"
        )
    return value


def _full_policy(name: str, value: str) -> FullPolicy:
    if value == "drop-oldest":
        return "drop-oldest"
    if value == "drop-newest":
        return "drop-newest"
    raise AgentConfigError(f"{name}={value!r} is not one of drop-oldest, drop-newest")


@dataclass(frozen=True)
class AgentSetting:
    env: str
    field: str
    parse: Callable[[str, str], Any]
    doc: str


AGENT_SETTINGS: tuple[AgentSetting, ...] = (
    AgentSetting(
        "LOGSPACE_AGENT_HQ_URL", "hq_url", _urls, "Base URL of HQ, or several, comma-separated."
    ),
    AgentSetting("LOGSPACE_AGENT_TOKEN", "token", _text, "Space token with write access."),
    AgentSetting("LOGSPACE_AGENT_QUEUE_DIR", "queue_dir", _path, "Directory of the durable queue."),
    AgentSetting("LOGSPACE_AGENT_QUEUE_NAME", "queue_name", _queue_name, "Queue file name."),
    AgentSetting(
        "LOGSPACE_AGENT_QUEUE_MAX_BYTES", "queue_max_bytes", _positive_int, "Queue size bound."
    ),
    AgentSetting(
        "LOGSPACE_AGENT_QUEUE_FULL_POLICY", "queue_full_policy", _full_policy, "When full."
    ),
    AgentSetting(
        "LOGSPACE_AGENT_BUFFER_MAX_BYTES",
        "buffer_max_bytes",
        _positive_int,
        "In-memory buffer bound.",
    ),
    AgentSetting(
        "LOGSPACE_AGENT_COMMIT_INTERVAL",
        "commit_interval",
        _non_negative_float,
        "Group commit interval.",
    ),
    AgentSetting(
        "LOGSPACE_AGENT_BATCH_MAX_EVENTS", "batch_max_events", _positive_int, "Events per batch."
    ),
    AgentSetting(
        "LOGSPACE_AGENT_BATCH_MAX_BYTES", "batch_max_bytes", _positive_int, "Bytes per batch."
    ),
    AgentSetting(
        "LOGSPACE_AGENT_BATCH_MAX_AGE", "batch_max_age", _non_negative_float, "Batch age."
    ),
    AgentSetting("LOGSPACE_AGENT_GZIP", "gzip", _boolean, "Compress batches with gzip."),
    AgentSetting("LOGSPACE_AGENT_TIMEOUT", "timeout", _positive_float, "Request timeout."),
    AgentSetting(
        "LOGSPACE_AGENT_BACKOFF_INITIAL", "backoff_initial", _positive_float, "First backoff."
    ),
    AgentSetting("LOGSPACE_AGENT_BACKOFF_MAX", "backoff_max", _positive_float, "Backoff cap."),
    AgentSetting(
        "LOGSPACE_AGENT_SHUTDOWN_TIMEOUT",
        "shutdown_timeout",
        _non_negative_float,
        "Flush deadline on close.",
    ),
    AgentSetting("LOGSPACE_AGENT_SYSTEM", "system", _optional_text, "`system` of every event."),
    AgentSetting("LOGSPACE_AGENT_MARKER", "marker", _optional_text, "Default `marker`."),
)


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """How an agent reaches HQ and keeps its queue; every field is documented in docs/agents.md."""

    token: str = field(repr=False)
    # One base URL, or several (comma-separated, or a sequence): the agent fails over.
    hq_url: str | Sequence[str] = "http://127.0.0.1:4567"
    queue_dir: Path | None = None
    queue_name: str = "agent"
    queue_max_bytes: int = 64 * 1024 * 1024
    queue_full_policy: FullPolicy = "drop-oldest"
    # `send` only buffers in memory; a thread commits the buffer to the queue in groups.
    buffer_max_bytes: int = 16 * 1024 * 1024
    commit_interval: float = 0.05
    batch_max_events: int = 1000
    batch_max_bytes: int = 1024 * 1024
    batch_max_age: float = 5.0
    # An older HQ that answers 415 to gzip turns it off again.
    gzip: bool = True
    timeout: float = 10.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    shutdown_timeout: float = 10.0
    system: str | None = None
    marker: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.queue_dir, str):
            object.__setattr__(self, "queue_dir", Path(self.queue_dir).expanduser())
        if not self.token:
            raise AgentConfigError(
                "a space token is required (LOGSPACE_AGENT_TOKEN or --token): "
                "HQ refuses events without one"
            )
        given = self.hq_url if isinstance(self.hq_url, str) else ",".join(self.hq_url)
        object.__setattr__(self, "hq_url", _agent_errors(_urls, "hq_url", given))
        _queue_name("queue_name", self.queue_name)
        if self.backoff_max < self.backoff_initial:
            raise AgentConfigError(
                f"backoff_max={self.backoff_max} must not be below "
                f"backoff_initial={self.backoff_initial}"
            )

    @property
    def hq_urls(self) -> list[str]:
        """Every HQ the agent may send to, in the order it tries them."""
        return str(self.hq_url).split(",")

    @property
    def queue_path(self) -> Path:
        return (self.queue_dir or default_queue_dir()) / f"{self.queue_name}.sqlite3"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        defaults: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> AgentConfig:
        """`LOGSPACE_AGENT_*` variables over the TOML file in `LOGSPACE_AGENT_CONFIG` over
        `defaults` (variable -> text). `overrides` win over all: command-line flags by field
        name, as text (parsed like the variables, errors naming `--flag`); None means unset."""
        values: dict[str, str] = dict(defaults or {})
        config_file = environ.get(CONFIG_FILE_VARIABLE)
        if config_file:
            known = {x.env.removeprefix("LOGSPACE_AGENT_").lower(): x.env for x in AGENT_SETTINGS}
            values.update(_agent_errors(read_toml, config_file, CONFIG_FILE_VARIABLE, known))
        values.update({k: v for k, v in environ.items() if k.startswith("LOGSPACE_AGENT_")})
        kwargs: dict[str, Any] = {}
        for setting in AGENT_SETTINGS:
            if setting.env in values:
                kwargs[setting.field] = _agent_errors(
                    setting.parse, setting.env, values[setting.env]
                )
        by_field = {s.field: s for s in AGENT_SETTINGS}
        for name, value in overrides.items():
            if value is None:
                continue
            if name not in by_field:
                raise TypeError(f"AgentConfig has no setting {name!r}")
            if isinstance(value, str):
                value = _agent_errors(by_field[name].parse, "--" + name.replace("_", "-"), value)
            kwargs[name] = value
        kwargs.setdefault("token", "")
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> AgentConfig:
        """Settings from a TOML file only (keys as in `docs/agents.md`, e.g. `hq_url`)."""
        return cls.from_env({CONFIG_FILE_VARIABLE: str(path)}, **overrides)

    def replace(self, **changes: Any) -> AgentConfig:
        return replace(self, **changes)


T = TypeVar("T")


def _agent_errors(parse: Callable[..., T], *args: Any) -> T:
    """Run a shared parser; its `ValueError` becomes an `AgentConfigError`."""
    try:
        return parse(*args)
    except AgentConfigError:
        raise
    except ValueError as error:
        raise AgentConfigError(str(error)) from None
