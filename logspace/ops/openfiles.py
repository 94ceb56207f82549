"""The process's open-file limit: every agent's connection takes a file descriptor.

Many systems start a service with a soft limit of 1024 open files and a hard limit far
above it (systemd: 1024 and 524288). A fleet's agents each keep a connection open, so an HQ
left at 1024 could hold about a thousand agents; beyond that, the server's event loop
accepts each new connection and closes it at once (libuv's answer to `EMFILE`), the agent
retries, and nothing is logged. The soft limit may be raised to the hard one by the process
itself, as Go's runtime and many servers do: HQ does so when it starts (`raise_limit`) and
says what it has, with a warning when that is low for a fleet.
"""

from __future__ import annotations

import logging
import resource
from typing import Final, NamedTuple

__all__ = ["FLEET_MINIMUM", "OpenFileLimit", "current_limit", "raise_limit", "target"]

log = logging.getLogger(__name__)

# Below this many open files, HQ warns at start: a fleet of a few thousand agents needs more.
FLEET_MINIMUM: Final = 4096
# Linux refuses a soft limit above fs.nr_open (1048576 by default), "unlimited" included.
_CEILING: Final = 1 << 20


class OpenFileLimit(NamedTuple):
    soft: int  # in force now
    hard: int
    before: int  # the soft limit found at start


def target(soft: int, hard: int) -> int:
    """The soft limit to ask for: the hard limit, at most `_CEILING`, and never lower than
    `soft` (`resource.RLIM_INFINITY` stands for no limit)."""
    if soft == resource.RLIM_INFINITY:
        return soft
    ceiling = _CEILING if hard == resource.RLIM_INFINITY else min(hard, _CEILING)
    return max(soft, ceiling)


def current_limit() -> float:
    """The soft open-file limit in force; infinity when there is none."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return float("inf") if soft == resource.RLIM_INFINITY else float(soft)


def raise_limit() -> OpenFileLimit:
    """Raise the soft open-file limit to the hard one and log what HQ has now."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = target(before, hard)
    soft = before
    if wanted != before:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (OSError, ValueError) as error:  # e.g. above fs.nr_open
            log.warning(
                "could not raise the open-file limit from %d to %d: %s", before, wanted, error
            )
    limit = OpenFileLimit(soft, hard, before)
    _report(limit)
    return limit


def _report(limit: OpenFileLimit) -> None:
    raised = f" (raised from {limit.before})" if limit.soft != limit.before else ""
    if limit.soft != resource.RLIM_INFINITY and limit.soft < FLEET_MINIMUM:
        log.warning(
            "open-file limit %d%s: HQ can hold about that many connections, one per agent; "
            "beyond them new connections are closed at once. For a fleet, raise the hard "
            "limit (ulimit -Hn, systemd LimitNOFILE=, Docker ulimits nofile) to %d or more",
            limit.soft,
            raised,
            FLEET_MINIMUM,
        )
    else:
        log.info("open-file limit %d%s", limit.soft, raised)
