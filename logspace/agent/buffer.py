"""Buffer: the in-memory front of the durable queue, moved into it in group commits.

An agent's `send` ends here: `put` appends the encoded event to a bounded list and returns, so
a web request or a logging call never waits for the disk. A thread of the buffer's own moves
what accumulates into the `DiskQueue`, one transaction per group: `interval` seconds after the
group's first event, or at once when it holds `group_events` events or `group_bytes` bytes.

The durability window: an event is on disk once the commit of its group returns, normally
within `interval` (plus the commit itself) of `put`. A crash of the process (kill -9) loses the
events accepted since the last commit: that window, and never more than `max_bytes` of events.
A clean stop (`close`) commits everything first, and so does a normal exit of the interpreter
for buffers never closed.

When the disk does not keep up and the buffer holds `max_bytes`, the queue's policy applies here
too: `drop-oldest` drops the oldest buffered events, `drop-newest` the new one. Nothing blocks.
Drops are counted at once and reported from the buffer's thread.

Agents of this library put drafts (see `draft.py`): the values an event is built from, which
the buffer's thread builds, encodes and checks with the rest of their group before committing
it, so the application's thread does none of that. A draft the rules refuse is dropped then.

The counters count an event from `put` on: `stats()` adds what is buffered to the queue's
counters, and each group commit writes its events and the drops since the last one into the
queue's counters in the same transaction. So `enqueued == sent + dropped + queued` holds while
running and across restarts; after a crash the counters simply never heard of the lost events.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import cast

from .config import FullPolicy
from .diskqueue import DiskQueue, QueueStats
from .draft import Build, Draft
from .shipper import Dropped

__all__ = ["Buffer", "BufferClosed", "EncodeDrafts"]

log = logging.getLogger("logspace.agent")

# After a commit failed (e.g. a full disk), the buffer waits this long before trying again.
_RETRY_SECONDS = 1.0
# Dropped events kept for the report until the next commit, at least (see `_drop`).
_REPORTED_BYTES = 1024 * 1024

# The buffer's thread encodes a small group (a light load, where the application's latency
# matters most) this many drafts at a time, pausing between slices: an application thread that
# woke meanwhile and waits for the GIL takes it in the pause, rather than waiting for the whole
# group (a few hundred microseconds on a slow machine: the tail of its requests' latency). A
# larger group (a busy application, whose throughput matters) is encoded in one piece, since
# the thread may wait up to the interpreter's switch interval to get the GIL back each time.
_SLICE_DRAFTS = 16
_SLICED_UP_TO = 128
_PAUSE_SECONDS = 0.00005


# Buffers not closed yet: an interpreter that exits normally commits them (see `_commit_all`).
_open: weakref.WeakSet[Buffer] = weakref.WeakSet()


def _commit_all() -> None:
    """At a normal interpreter exit, commit what open buffers hold: a program that never
    closed its sender keeps those events for the next start instead of losing them."""
    for buffer in list(_open):
        buffer.commit()


atexit.register(_commit_all)


# Turns drafts into their encoded events, or the drops of those the rules refuse, in order.
EncodeDrafts = Callable[[Sequence[Draft]], list[bytes | Dropped]]
# What the buffer holds: an encoded event, or a draft of one.
Entry = bytes | Draft


def _size(entry: Entry) -> int:
    return len(entry) if isinstance(entry, bytes) else entry[2]


class BufferClosed(RuntimeError):
    """The sender was closed; it takes no more events."""


class Buffer:
    """Takes encoded events at memory speed; a thread commits them to `queue` in groups."""

    def __init__(
        self,
        queue: DiskQueue,
        *,
        max_bytes: int,
        interval: float,
        group_events: int,
        group_bytes: int,
        when_full: FullPolicy,
        committed: Callable[[bool], None],
        report: Callable[[list[Dropped]], None],
        encode_drafts: EncodeDrafts | None = None,
    ) -> None:
        self.queue = queue
        self.max_bytes = max_bytes
        self.interval = interval
        self.group_events = group_events
        self.group_bytes = group_bytes
        self.when_full = when_full
        self._committed = committed
        self._report = report
        self._encode_drafts = encode_drafts
        # `_lock` guards the buffered state and is held only for appends and the swap;
        # `_commit_lock` is held for a whole group commit, so `stats` never sees a group
        # that is neither buffered nor in the queue (reentrant: `on_drop` may ask for stats).
        self._lock = threading.Lock()
        self._commit_lock = threading.RLock()
        self._bodies: deque[Entry] = deque()
        self._bytes = 0
        self._drafts = 0  # of the entries buffered
        self._created = 0.0
        self._dropped = 0  # dropped since the last commit, to be counted with it
        self._unreported: list[Entry] = []
        self._unreported_bytes = 0
        self._closed = False
        self._stopping = False
        self._wake = threading.Event()  # something is buffered
        self._due = threading.Event()  # a group is full, or someone is stopping us
        self._thread = threading.Thread(target=self._run, name="logspace-commit", daemon=True)
        self._thread.start()
        _open.add(self)

    def __len__(self) -> int:
        return len(self._bodies)

    def put(self, body: bytes) -> None:
        """Buffer one encoded event; never waits for the disk. `BufferClosed` after `close`."""
        self._put(body, len(body))

    def put_draft(self, build: Build, values: object, size: int) -> None:
        """Buffer the draft of an event (see `draft.py`) of about `size` bytes, as `put`."""
        if self._encode_drafts is None:
            raise TypeError("this buffer takes no drafts")
        draft = (build, values, size)
        if self._drafts and self._bytes >= self.max_bytes // 2:
            # The buffer is half full and the thread still has drafts to build: an application
            # thread that keeps the CPU (and the GIL) busy leaves it too little time for them,
            # and the buffer would fill up and drop. So the caller builds its own event, as
            # `send` does, until the thread catches up: a burst costs the caller little, a
            # sustained overload what `send` costs. (An event the rules refuse goes in as a
            # draft, to be reported by the thread.)
            [encoded] = self._encode_drafts([draft])
            if isinstance(encoded, bytes):
                self._put(encoded, len(encoded))
                return
        # `_put` for a draft, written out: this runs in every request and logging call.
        with self._lock:
            if self._closed:
                raise BufferClosed("the sender is closed and takes no more events")
            if self._bytes + size > self.max_bytes and not self._make_room(draft, size):
                return
            bodies = self._bodies
            first = not bodies
            if first:
                self._created = time.time()
            bodies.append(draft)
            self._bytes += size
            self._drafts += 1
            full = len(bodies) == self.group_events or (
                self._bytes >= self.group_bytes > self._bytes - size
            )
        if first:
            self._wake.set()
        if full:
            self._due.set()

    def _put(self, entry: Entry, size: int) -> None:
        with self._lock:
            if self._closed:
                raise BufferClosed("the sender is closed and takes no more events")
            if self._bytes + size > self.max_bytes and not self._make_room(entry, size):
                return
            first = not self._bodies
            if first:
                self._created = time.time()
            self._bodies.append(entry)
            self._bytes += size
            if not isinstance(entry, bytes):
                self._drafts += 1
            full = len(self._bodies) == self.group_events or (
                self._bytes >= self.group_bytes > self._bytes - size
            )
        if first:
            self._wake.set()
        if full:
            self._due.set()

    def _make_room(self, entry: Entry, size: int) -> bool:
        """Apply the full-queue policy (under `_lock`); False when `entry` itself is dropped."""
        if self.when_full == "drop-newest" or size > self.max_bytes:
            self._drop(entry, size)
            return False
        while self._bodies and self._bytes + size > self.max_bytes:
            oldest = self._bodies.popleft()
            oldest_size = _size(oldest)
            if not isinstance(oldest, bytes):
                self._drafts -= 1
            self._bytes -= oldest_size
            self._drop(oldest, oldest_size)
        return True

    def _drop(self, entry: Entry, size: int) -> None:
        self._dropped += 1
        # Kept for `on_drop` up to the buffer's own size (at least 1 MiB): a disk stalled for
        # long must not turn the drops into unbounded memory. Beyond that they are counted only.
        if self._unreported_bytes + size <= max(self.max_bytes, _REPORTED_BYTES):
            self._unreported.append(entry)
            self._unreported_bytes += size

    def commit(self, *, whole_groups: bool = False, sliced: bool = False) -> bool:
        """Move everything buffered into the queue now, in one transaction; False if the queue
        failed (logged; the events stay buffered and the buffer's thread tries again).

        `whole_groups` (the buffer's thread): of more than `group_events` events, commit whole
        groups only and keep the rest buffered for the next group (see `_commit`). `sliced`
        (the buffer's thread): encode a small group in slices (see `_SLICE_DRAFTS`)."""
        with self._commit_lock:
            try:
                self._commit(whole_groups, sliced)
            except Exception:
                log.exception("could not commit events to the queue; trying again")
                return False
        return True

    def _commit(self, whole_groups: bool = False, sliced: bool = False) -> None:
        with self._lock:
            self._wake.clear()
            self._due.clear()
            entries = list(self._bodies)
            # A busy application adds events while a full group waits for the thread: a group
            # of 1000 and 40 would become a row of 1000 and one of 40, and a batch (whole rows,
            # at most `group_events`) of 40 would go out on its own, a third of all requests
            # to HQ under load. So the thread commits whole groups and keeps the few beyond for
            # the next one, which follows when it is full or `interval` later.
            rest = len(entries) % self.group_events if whole_groups else 0
            if rest and len(entries) > self.group_events:
                kept = entries[-rest:]
                del entries[-rest:]
                self._bodies = deque(kept)
                kept_bytes = sum(map(_size, kept))
                size, self._bytes = self._bytes - kept_bytes, kept_bytes
                self._drafts = sum(not isinstance(entry, bytes) for entry in kept)
                # `_created` stays: the kept events are younger than the group's first.
                self._wake.set()
            else:
                self._bodies = deque()
                size, self._bytes = self._bytes, 0
                self._drafts = 0
            created = self._created
            dropped, self._dropped = self._dropped, 0
            unreported, self._unreported = self._unreported, []
            self._unreported_bytes = 0
        try:
            try:
                bodies, refused = self._encoded(entries, sliced)
            except BaseException:
                self._restore(entries, size, created, dropped)
                raise
            # Refused drafts were counted from `put` on: now as dropped, with the group.
            gone = dropped + len(refused)
            if refused:
                self._report(refused)
            if bodies or gone:
                try:
                    spilled = self.queue.put(bodies, dropped=gone, created=created)
                except BaseException:
                    self._restore(bodies, sum(map(len, bodies)), created, gone)
                    raise
                if spilled:
                    message = f"the queue holds at most {self.queue.max_bytes} B"
                    self._report([Dropped(body, "queue-full", message) for body in spilled])
                if bodies:
                    # Only this group queued: the queue was empty since the sender last
                    # looked (it only takes events away meanwhile), so it waits for nothing.
                    self._committed(len(self.queue) <= len(bodies))
        finally:
            if dropped:
                self._report_buffer_drops(unreported, dropped)

    def _encoded(
        self, entries: list[Entry], sliced: bool = False
    ) -> tuple[list[bytes], list[Dropped]]:
        """The group's events encoded, drafts built and checked; the drafts refused."""
        kinds = set(map(type, entries))  # a loop in C: this runs for every event
        if tuple not in kinds:  # encoded events only (drafts are tuples)
            return cast(list[bytes], entries), []
        if len(kinds) == 1:
            # The agents' common group, drafts only: built all as they are, nothing to merge.
            made = self._encode(cast(list[Draft], entries), sliced)
            if set(map(type, made)) <= {bytes}:
                return cast(list[bytes], made), []
            built = iter(made)
        else:
            drafts = [entry for entry in entries if not isinstance(entry, bytes)]
            built = iter(self._encode(drafts, sliced))
        bodies: list[bytes] = []
        refused: list[Dropped] = []
        for entry in entries:
            if isinstance(entry, bytes):
                bodies.append(entry)
                continue
            encoded = next(built)
            if isinstance(encoded, bytes):
                bodies.append(encoded)
            else:
                refused.append(encoded)
        return bodies, refused

    def _encode(self, drafts: list[Draft], sliced: bool) -> list[bytes | Dropped]:
        """`encode_drafts` of the drafts, a small group in slices if `sliced`: the same
        results (each draft is encoded on its own), only the GIL changes hands between them."""
        encode = self._encode_drafts
        assert encode is not None  # put_draft refuses drafts without it
        if not sliced or not _SLICE_DRAFTS < len(drafts) <= _SLICED_UP_TO:
            return encode(drafts)
        made = encode(drafts[:_SLICE_DRAFTS])
        for start in range(_SLICE_DRAFTS, len(drafts), _SLICE_DRAFTS):
            time.sleep(_PAUSE_SECONDS)
            made += encode(drafts[start : start + _SLICE_DRAFTS])
        return made

    def _restore(self, entries: Sequence[Entry], size: int, created: float, dropped: int) -> None:
        """Put a group whose commit failed back in front of what came since (under the bound)."""
        with self._lock:
            newer = self._bodies
            self._bodies = deque(entries)
            self._bytes = size
            self._created = created
            self._dropped += dropped
            self._drafts = sum(not isinstance(entry, bytes) for entry in entries)
            for entry in newer:
                size = _size(entry)
                if self._bytes + size > self.max_bytes and not self._make_room(entry, size):
                    continue
                self._bodies.append(entry)
                self._bytes += size
                if not isinstance(entry, bytes):
                    self._drafts += 1
        self._wake.set()

    def _report_buffer_drops(self, kept: list[Entry], count: int) -> None:
        message = (
            f"the disk did not keep up and the in-memory buffer holds at most {self.max_bytes} B"
        )
        if count > len(kept):
            log.warning("%d more event(s) dropped from the buffer, not kept", count - len(kept))
        if kept:
            # Drafts are built for the report; one the rules refuse is reported as dropped
            # for the full buffer all the same (that is why it went).
            bodies, refused = self._encoded(kept)
            drops = [Dropped(body, "queue-full", message) for body in bodies]
            self._report(drops + [Dropped(d.body, "queue-full", message) for d in refused])

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if not self._stopping:
                # Let the group grow for `interval`, unless it fills up first.
                self._due.wait(self.interval)
            if self._stopping:
                return
            if not self.commit(whole_groups=True, sliced=True):
                self._due.wait(_RETRY_SECONDS)

    def stats(self) -> QueueStats:
        """The queue's counters with what is buffered added (as `buffered`, part of `queued`)."""
        with self._commit_lock:
            with self._lock:
                buffered, size, dropped = len(self._bodies), self._bytes, self._dropped
            stats = self.queue.stats()
        return replace(
            stats,
            enqueued=stats.enqueued + buffered + dropped,
            dropped=stats.dropped + dropped,
            queued=stats.queued + buffered,
            queued_bytes=stats.queued_bytes + size,
            buffered=buffered,
        )

    def close(self, timeout: float) -> bool:
        """Take no more events, stop the thread and commit what is left; False if that
        could not be done within `timeout` seconds (the disk is stuck): those events are lost."""
        deadline = time.monotonic() + timeout
        _open.discard(self)
        with self._lock:
            self._closed = True
        self._stopping = True
        self._wake.set()
        self._due.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._commit_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            log.error("the disk did not take the last %d event(s) in time: lost", len(self))
            return False
        try:
            self._commit()
        except Exception:
            log.exception("could not commit the last %d event(s); they are lost", len(self))
            return False
        finally:
            self._commit_lock.release()
        return True
