"""The event rules in C: the fast implementation of what `logspace.decoder` checks.

One pass over a JSON array of events, creating no Python object per event or value, either
accepts the whole batch exactly as the thorough decoder would (and writes each event as a line
pair of the caller's making: HQ's ingest has it write `_bulk` lines) or declines; it never
explains. Shared by HQ's ingest (`ingest.transcoder`) and the agent library, which asks only
for its verdict on the events it builds. tests/ingest/test_transcoder.py holds it to the
thorough decoder and `make fuzz` searches for inputs where the two differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final, NamedTuple

import msgspec

from logspace.events import Limits, instant_bound

__all__ = ["AVAILABLE", "Written", "newest_at", "plain_each", "plain_events", "write"]

_compiled: Callable[..., tuple[bytes, int, set[str], int, int, int] | None] | None
_verdicts: Callable[..., list[bool]] | None
try:
    from logspace.fastpath._transcode import transcode as _compiled
    from logspace.fastpath._transcode import verdicts as _verdicts
except ImportError:  # pragma: no cover - no C compiler: the thorough decoder does it all
    _compiled = _verdicts = None

# False only where the package was installed without a C compiler (see setup.py).
AVAILABLE = _compiled is not None


class Written(NamedTuple):
    """A batch the C path took: per event, its action line (`action` + period + id) and its
    document line (its members + `tail`), with what the documents use."""

    lines: bytes
    events: int
    fields: set[str]  # every property field (`family.name`) used
    non_finite: int  # values Elasticsearch stores but does not index (see events.unindexed)
    long_strings: int
    normalised: int  # events whose document is not their own bytes, compacted


def write(
    body: bytes | memoryview,
    action: bytes,
    tail: bytes,
    limits: Limits,
    newest: datetime,
    partition: int = 0,
) -> Written | None:
    """The batch's line pairs, or None when the thorough decoder must look at it. Each action
    line ends with the period of the event's timestamp, by `partition` (see
    `logspace.partitions.CODES`). `body` may be any buffer (the tests read one from a block
    of exactly its size)."""
    if _compiled is None:  # pragma: no cover - see AVAILABLE
        return None
    result = _compiled(body, action, tail, *_rules(limits, newest), partition)
    return None if result is None else Written(*result)


_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


def plain_events(body: bytes, limits: Limits, newest: datetime) -> list[bool] | None:
    """For each event of a batch, whether the C path takes it alone as it is (no array to
    unwrap, no NaN to quote, no empty text to leave out): then the event breaks no rule and
    needs no normalising, and the thorough decoder need not check it again. None when the body
    is no JSON array (or the extension is missing)."""
    if _verdicts is None:  # pragma: no cover - see AVAILABLE
        return None
    try:
        raws = _RAW_ARRAY.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None
    return _verdicts(raws, *_rules(limits, newest))


def plain_each(events: Sequence[bytes], limits: Limits, newest: datetime) -> list[bool] | None:
    """`plain_events` for events already apart, each the JSON of one event (as the agent
    encodes them), in one call of C however many there are. None without the extension.
    A group of them is read without holding the GIL: the agent's application runs meanwhile."""
    if _verdicts is None:  # pragma: no cover - see AVAILABLE
        return None
    return _verdicts(events, *_rules(limits, newest), True)


def newest_at(limits: Limits, clock: float) -> datetime:
    """The newest timestamp `limits` accept at `clock` (`time.time()`), to the whole second:
    the same object for every call within a second, whose rules `_rules` then has at hand.
    (The C path compares with whole seconds anyway, see `_rules`.)"""
    global _window
    window = _window
    # Within the clocks of the last answer's second (a fleet's every request): that answer,
    # without the arithmetic. A clock within a microsecond of either end takes the long way,
    # so that float rounding never gives another second than it would.
    if window is not None and window[0] is limits and window[1] < clock < window[2]:
        return window[3]
    ahead = limits.max_future.total_seconds()
    second = int(clock + ahead)
    newest = _newest_in(limits, second)
    _window = (limits, second - ahead + _MARGIN, second + 1 - ahead - _MARGIN, newest)
    return newest


_MARGIN: Final = 1e-6


def _newest_in(limits: Limits, second: int) -> datetime:
    last = _last
    # (An agent's check may have left an instant within the second there: not that one.)
    if last is not None and last[0] is limits and last[1] == second and not last[3].microsecond:
        return last[3]
    newest = datetime.fromtimestamp(second, UTC)
    _rules(limits, newest)
    return newest


def _rules(limits: Limits, newest: datetime) -> tuple[int, int, int, int, int, bytes, bytes]:
    """The limits as the C function takes them, the timestamp window as canonical instants
    (which compare as strings do)."""
    # Whole seconds of `newest`, so one formatting serves a second of calls (agents check one
    # event at a time): the C path then declines the rare event stamped within a second of
    # the newest accepted instant, and the thorough decoder takes it.
    global _last
    if _last is not None and _last[0] is limits and _last[3] is newest:
        return _last[2]  # the same instant as last time (see `newest_at`)
    second = int(newest.timestamp())
    if _last is not None and _last[0] is limits and _last[1] == second:
        _last = (limits, second, _last[2], newest)
        return _last[2]
    rules = (
        limits.max_events,
        limits.max_properties,
        limits.max_fields,
        limits.max_property_name_length,
        limits.max_string_length,
        instant_bound(limits.oldest_timestamp, up=True).encode(),
        instant_bound(datetime.fromtimestamp(second, UTC)).encode(),
    )
    _last = (limits, second, rules, newest)
    return rules


_last: tuple[Limits, int, tuple[int, int, int, int, int, bytes, bytes], datetime] | None = None
# `newest_at`'s last answer: its limits, the clocks it holds for (within margins), the instant.
_window: tuple[Limits, float, float, datetime] | None = None
