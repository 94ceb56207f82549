"""How the text of a setting becomes its value: one parser per kind of value, each naming
the setting in what it refuses."""

from __future__ import annotations

import re
from datetime import datetime
from typing import cast

from logspace.events import BadValue, parse_instant
from logspace.orders import MAX_COMMIT_SECONDS
from logspace.partitions import PARTITIONS, Partition
from logspace.textvalues import parse_keep
from logspace.textvalues import positive_int as _positive_int

__all__ = [
    "ACCESS_LOG_MODES",
    "SettingsError",
    "access_log",
    "commit_seconds",
    "field_budget",
    "index_prefix",
    "instant",
    "log_format",
    "metrics_token",
    "partition",
    "percent",
    "port",
    "replicas",
    "retention_days",
]

_INDEX_PREFIX = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,99}")


class SettingsError(ValueError):
    """A setting has a value HQ cannot use; the message names the setting."""


def port(name: str, value: str) -> int:
    number = _positive_int(name, value)
    if number > 65535:
        raise SettingsError(f"{name}={value!r} is not a TCP port (1-65535)")
    return number


def instant(name: str, value: str) -> datetime:
    try:
        return parse_instant(value)
    except BadValue as bad:
        raise SettingsError(f"{name}={value!r}: {bad}") from None


def field_budget(name: str, value: str) -> int:
    number = _positive_int(name, value)
    # The templates let an index hold 10000 fields; keep room for the event's own fields.
    if number > 9900:
        raise SettingsError(f"{name}={value!r} must be at most 9900")
    return number


def index_prefix(name: str, value: str) -> str:
    if not _INDEX_PREFIX.fullmatch(value):
        raise SettingsError(
            f"{name}={value!r} is not a valid index prefix "
            "(lower-case letters, digits, '_', '-', '.'; starting with a letter or digit)"
        )
    return value


def _one_of(name: str, value: str, choices: tuple[str, ...], refusal: str) -> str:
    """`value`, trimmed and in lower case, if it is one of `choices`; else `SettingsError`
    saying `name=value` and then `refusal`."""
    lowered = value.strip().lower()
    if lowered not in choices:
        raise SettingsError(f"{name}={value!r} {refusal}")
    return lowered


def partition(name: str, value: str) -> Partition:
    return cast(
        Partition, _one_of(name, value, PARTITIONS, "is not a partition (month, quarter or year)")
    )


_REPLICA_RANGE = re.compile(r"([0-9]{1,2})-([0-9]{1,2}|all)")


def replicas(name: str, value: str) -> str:
    """`auto`, a number of replicas, or a range `min-max` (`max` a number or `all`)."""
    text = value.strip().lower()
    if text == "auto" or (text.isascii() and text.isdigit() and int(text) <= 99):
        return text if text == "auto" else str(int(text))
    match = _REPLICA_RANGE.fullmatch(text)
    if match is not None and (match[2] == "all" or int(match[1]) <= int(match[2])):
        return text
    raise SettingsError(
        f"{name}={value!r} is not a number of replicas: auto, a number (0-99) or a range "
        "such as 0-1 or 1-all"
    )


def percent(name: str, value: str) -> int:
    number = _positive_int(name, value)
    if number > 100:
        raise SettingsError(f"{name}={value!r} must be a percentage from 1 to 100")
    return number


def retention_days(name: str, value: str) -> int | None:
    if not value.strip():
        return None
    try:
        return parse_keep(value)
    except ValueError as error:
        raise SettingsError(f"{name}={error}") from None


def commit_seconds(name: str, value: str) -> int:
    if not (value.strip().isascii() and value.strip().isdigit()):
        raise SettingsError(f"{name}={value!r} is not a whole number of seconds")
    number = int(value)
    if number > MAX_COMMIT_SECONDS:
        raise SettingsError(f"{name}={value!r} must be at most {MAX_COMMIT_SECONDS}")
    return number


def metrics_token(name: str, value: str) -> str | None:
    token = value.strip()
    if token and not (token.isascii() and token.isprintable() and " " not in token):
        raise SettingsError(f"{name} must be printable ASCII without spaces")
    return token or None


# Which access lines HQ writes: every one, those of requests answered 400 or above (and of
# requests the client abandoned), or none.
ACCESS_LOG_MODES = ("all", "errors", "off")


def access_log(name: str, value: str) -> str:
    return _one_of(name, value, ACCESS_LOG_MODES, f"is not one of {', '.join(ACCESS_LOG_MODES)}")


def log_format(name: str, value: str) -> str:
    return _one_of(name, value, ("text", "json"), "is not a log format (text or json)")
