"""The order book: the orders in force, read from the files in `LOGSPACE_ORDERS_DIR`.

    <dir>/<space>/<controller-id>.json      one order, in the format of `logspace.orders`

HQ reads the files at start and again whenever one is added, changed or removed (it polls every
`LOGSPACE_ORDERS_RELOAD_SECONDS`). A reload swaps one immutable `Snapshot` for another, so a
request sees one consistent set. Only `*.json` files count; hidden files and others (editor
backups, a README) are ignored.

A file that is not a valid order never stops HQ: it is logged and listed (`GET /orders`) with
every problem found. If it was valid before, that last valid version stays in force until HQ
restarts, so a typo does not switch a fleet of agents off.

Every order is served in the shape the original Java controller's parser reads: an order file
without `commit-max-seconds` is served with the default commit delay (that parser throws on
an order without one, after it has recorded `Last-Modified`, so it would never apply it).

`Last-Modified` moves forward whenever the content served may have changed, since the
original agents send only `If-Modified-Since`: it is the later of the file's last change
(mtime or ctime, which `cp -p`, a restored backup or `git checkout` cannot set back) and when
this HQ started (a new HQ may serve the same file differently), never later than when it was
read. Content that differs from what was served before gets a `Last-Modified` after the one
served before; unchanged content keeps its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from logspace.orders import (
    ORIGINAL_COMMIT_SECONDS,
    InvalidOrder,
    Order,
    is_controller_id,
    parse_order,
)
from logspace.problems import Problem
from logspace.spaces.grants import is_space_name

__all__ = ["Broken", "OrderBook", "Served", "Snapshot", "load"]

log = logging.getLogger(__name__)

MAX_FILE_BYTES: Final = 1024 * 1024

# What identifies a version of the directory: every order file's path, mtime, ctime (which
# changes on every write, whatever mtime is set to), size and inode.
Stamp = tuple[tuple[str, int, int, int, int], ...]


@dataclass(frozen=True)
class Served:
    """An order in force, as `GET /orders/{controller-id}` answers it."""

    space: str
    controller_id: str
    order: Order
    file: str
    # HTTP dates have whole seconds.
    last_modified: datetime
    body: bytes = field(repr=False)
    etag: str
    # Fields HQ filled in (the file has none), and fields of the file it does not serve.
    filled: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    def listed(self) -> dict[str, Any]:
        entry = {
            "controller-id": self.controller_id,
            "file": self.file,
            "last-modified": _iso(self.last_modified),
            "order": self.order.to_json(),
        }
        if self.filled:
            entry["filled-in"] = list(self.filled)
        if self.ignored:
            entry["ignored"] = list(self.ignored)
        return entry


@dataclass(frozen=True)
class Broken:
    """A file that is not a valid order, and why; `space` None when no space can see it."""

    space: str | None
    controller_id: str | None
    file: str
    problems: tuple[Problem, ...]
    # The last valid version, still in force.
    previous: Served | None = None

    def listed(self) -> dict[str, Any]:
        return {
            "controller-id": self.controller_id,
            "file": self.file,
            "errors": [problem.as_json() for problem in self.problems],
            "previous-in-force": None if self.previous is None else self.previous.listed(),
        }

    def describe(self) -> str:
        kept = "; its last valid version stays in force" if self.previous is not None else ""
        return f"{self.file}: {'; '.join(map(str, self.problems))}{kept}"


@dataclass(frozen=True)
class Snapshot:
    orders: Mapping[tuple[str, str], Served] = field(default_factory=dict)
    broken: tuple[Broken, ...] = ()
    stamp: Stamp | None = None

    def listing(self, space: str) -> dict[str, Any]:
        return {
            "orders": [
                served.listed()
                for (owner, _), served in sorted(self.orders.items())
                if owner == space
            ],
            "invalid": [broken.listed() for broken in self.broken if broken.space == space],
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def scan(directory: Path) -> Stamp:
    """The current version of the directory's order files (cheap: no file is read)."""
    entries = []
    for path in _candidates(directory):
        try:
            stat = path.stat()
        except OSError:
            continue  # removed meanwhile; the next scan will not list it
        entries.append(
            (
                str(path.relative_to(directory)),
                stat.st_mtime_ns,
                stat.st_ctime_ns,
                stat.st_size,
                stat.st_ino,
            )
        )
    return tuple(sorted(entries))


def _candidates(directory: Path) -> list[Path]:
    """Every non-hidden `*.json` file one or two levels below `directory`."""
    found: list[Path] = []
    for entry in _listdir(directory):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found.extend(
                child
                for child in _listdir(entry)
                if child.suffix == ".json" and not child.name.startswith(".") and child.is_file()
            )
        elif entry.suffix == ".json":
            found.append(entry)
    return found


def _listdir(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except OSError:
        return []


def load(
    directory: Path,
    previous: Snapshot,
    now: datetime | None = None,
    *,
    started: datetime | None = None,
    commit_seconds: int = ORIGINAL_COMMIT_SECONDS,
) -> Snapshot:
    """Read every order file; `previous` supplies the last valid versions of broken files and
    the `Last-Modified` served so far. `started` (when HQ started) is the earliest
    `Last-Modified`; `commit_seconds` fills in a missing `commit-max-seconds`."""
    now = now or datetime.now(UTC)
    stamp = scan(directory)
    orders: dict[tuple[str, str], Served] = {}
    broken: list[Broken] = []
    for relative, *_ in stamp:
        parts = Path(relative).parts
        if len(parts) != 2:
            broken.append(
                Broken(
                    None,
                    None,
                    relative,
                    (Problem("$", "order files belong in a space's directory: <space>/<id>.json"),),
                )
            )
            continue
        space, name = parts
        controller_id = name.removesuffix(".json")
        if not is_space_name(space):
            broken.append(
                Broken(None, None, relative, (Problem("$", f"{space!r} is not a space name"),))
            )
            continue
        key = (space, controller_id)
        result = _read(directory / relative, space, controller_id, relative, now, commit_seconds)
        if isinstance(result, Served):
            floor = started or now
            orders[key] = _dated(result, previous.orders.get(key), min(floor, now))
        else:
            kept = previous.orders.get(key)
            if kept is None:
                kept = next(
                    (b.previous for b in previous.broken if b.file == relative and b.previous),
                    None,
                )
            if kept is not None:
                orders[key] = kept
            broken.append(Broken(space, controller_id, relative, result, kept))
    return Snapshot(orders, tuple(broken), stamp)


def _dated(served: Served, before: Served | None, floor: datetime) -> Served:
    """`served` with its `Last-Modified`: its file's, at least `floor`; the one served `before`
    for the same content; after it for other content."""
    if before is not None and before.body == served.body:
        return replace(served, last_modified=before.last_modified)
    moment = max(served.last_modified, floor.replace(microsecond=0))
    if before is not None and moment <= before.last_modified:
        moment = before.last_modified + timedelta(seconds=1)
    return replace(served, last_modified=moment)


def _read(
    path: Path,
    space: str,
    controller_id: str,
    relative: str,
    now: datetime,
    commit_seconds: int,
) -> Served | tuple[Problem, ...]:
    if not is_controller_id(controller_id):
        return (
            Problem(
                "$",
                f"{controller_id!r} is not a controller id (1 to 128 letters, digits, '_', "
                "'-' and '.', starting with a letter or digit)",
            ),
        )
    try:
        with path.open("rb") as file:
            content = file.read(MAX_FILE_BYTES + 1)
            status = os.fstat(file.fileno())
    except OSError as error:
        return (Problem("$", f"cannot be read: {error.strerror or error}"),)
    if len(content) > MAX_FILE_BYTES:
        return (Problem("$", f"larger than {MAX_FILE_BYTES} bytes"),)
    try:
        order = parse_order(content, now=now)
    except InvalidOrder as invalid:
        return tuple(invalid.problems)
    filled: tuple[str, ...] = ()
    if order.commit_max_seconds is None:
        order = replace(order, commit_max_seconds=commit_seconds)
        filled = ("commit-max-seconds",)
    body = order.encode()
    # Whole seconds, and never ahead of now: a file dated in the future must not hold back
    # every later version.
    changed = max(status.st_mtime_ns, status.st_ctime_ns) // 1_000_000_000
    return Served(
        space,
        controller_id,
        order,
        relative,
        min(datetime.fromtimestamp(changed, UTC), now.replace(microsecond=0)),
        body,
        '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        filled,
        order.ignored,
    )


def _adapted(served: Served) -> str:
    notes = []
    if served.filled:
        notes.append(
            f"commit-max-seconds {served.order.commit_max_seconds} (the file has none, which "
            "the original Java agents cannot read)"
        )
    if served.ignored:
        notes.append(f"without {', '.join(served.ignored)} (no agent reads it)")
    return "; ".join(notes)


class OrderBook:
    """The orders in force, reloaded when the files change. Without a directory: none."""

    def __init__(
        self,
        directory: str | None,
        reload_seconds: float = 5.0,
        commit_seconds: int = ORIGINAL_COMMIT_SECONDS,
    ) -> None:
        self.directory = Path(directory) if directory else None
        self.reload_seconds = reload_seconds
        self.commit_seconds = commit_seconds
        self.started = datetime.now(UTC)
        self.current = Snapshot()
        if self.directory is not None:
            if not self.directory.is_dir():
                log.error(
                    "LOGSPACE_ORDERS_DIR=%s is not a directory; no orders until it is one",
                    self.directory,
                )
            self.reload(starting=True)

    def order(self, space: str, controller_id: str) -> Served | None:
        return self.current.orders.get((space, controller_id))

    def listing(self, space: str) -> dict[str, Any]:
        return self.current.listing(space)

    def reload(self, *, starting: bool = False) -> Snapshot:
        if self.directory is None:
            return self.current
        before = self.current
        after = load(
            self.directory, before, started=self.started, commit_seconds=self.commit_seconds
        )
        reported = {(b.file, b.problems) for b in before.broken}
        for broken in after.broken:
            if (broken.file, broken.problems) not in reported:
                log.error("invalid order file %s", broken.describe())
        for key, served in sorted(after.orders.items()):
            known = before.orders.get(key)
            if (served.filled or served.ignored) and (known is None or known.body != served.body):
                log.info("order file %s served as %s", served.file, _adapted(served))
        if starting or after.orders != before.orders or after.broken != before.broken:
            log.info(
                "orders loaded from %s: %d in force, %d invalid files",
                self.directory,
                len(after.orders),
                len(after.broken),
            )
        self.current = after
        return after

    def reload_if_changed(self) -> bool:
        if self.directory is None or scan(self.directory) == self.current.stamp:
            return False
        self.reload()
        return True

    async def watch(self) -> None:
        """Poll the directory for changes until cancelled."""
        while True:
            await asyncio.sleep(self.reload_seconds)
            try:
                await asyncio.to_thread(self.reload_if_changed)
            except Exception:
                # A failing disk must not end the watching; the orders in force stay.
                log.exception("reading the order files failed; the orders in force stay")
