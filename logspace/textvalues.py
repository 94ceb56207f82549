"""Setting values from text, shared by HQ's settings and the agents' configuration.

Each parser takes the setting's name, for the message, and its text; it raises `ValueError`
naming both, e.g. `LOGSPACE_PORT='ten' is not a valid integer`. A TOML configuration file is
turned into the same text form as environment variables, so one parser serves both.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "boolean",
    "non_negative_float",
    "optional_text",
    "parse_keep",
    "positive_float",
    "positive_int",
    "read_toml",
    "text",
    "url",
    "urls",
]


def text(name: str, value: str) -> str:
    return value


def optional_text(name: str, value: str) -> str | None:
    return value or None


def url(name: str, value: str) -> str:
    if not re.match(r"https?://[^/\s]+", value):
        raise ValueError(f"{name}={value!r} is not an http(s) URL")
    return value.rstrip("/")


def urls(name: str, value: str) -> str:
    """One URL or several, comma-separated (e.g. the nodes of one cluster, several HQs):
    each checked, spaces and trailing slashes taken off, joined by commas again."""
    found = [url(name, part.strip()) for part in value.split(",") if part.strip()]
    if not found:
        raise ValueError(f"{name}={value!r} names no URL")
    return ",".join(found)


def positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a valid integer") from None
    if number <= 0:
        raise ValueError(f"{name}={value!r} must be greater than zero")
    return number


def non_negative_float(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None
    if not 0 <= number < float("inf"):
        raise ValueError(f"{name}={value!r} must be zero or more")
    return number


def positive_float(name: str, value: str) -> float:
    number = non_negative_float(name, value)
    if number == 0:
        raise ValueError(f"{name}={value!r} must be greater than zero")
    return number


def boolean(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (true or false)")


def read_toml(path: str, variable: str, known: Mapping[str, str]) -> dict[str, str]:
    """The settings of a TOML file as variable -> text; `known` maps its keys to variables."""
    try:
        data = tomllib.loads(Path(path).expanduser().read_text())
    except OSError as error:
        raise ValueError(f"{variable}={path!r} cannot be read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{variable}={path!r} is not valid TOML: {error}") from None
    values: dict[str, str] = {}
    for key, value in data.items():
        env = known.get(key)
        if env is None:
            raise ValueError(f"{path}: unknown setting {key!r}; known: {', '.join(known)}")
        if isinstance(value, bool):
            values[env] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            values[env] = str(value)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            # Several URLs (or tokens) as an array: the same as the comma-separated text.
            values[env] = ",".join(value)
        else:
            raise ValueError(f"{path}: {key} must be a string, number, boolean or strings")
    return values


_KEEP = re.compile(r"([0-9]{1,6})d")


def parse_keep(text: str) -> int:
    """`90d` -> 90: the retention window in days."""
    match = _KEEP.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"{text!r} is not a retention window such as 90d (days, at least 1d)")
    return int(match[1])
