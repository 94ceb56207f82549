"""Cron: the Quartz-style schedules of orders, with a seconds field. Pure.

    0/10  *  *  *  *  ?  *
    │     │  │  │  │  │  └ year (optional)  1970-2099
    │     │  │  │  │  └ day of week         1-7 (1 = Sunday) or SUN-SAT
    │     │  │  │  └ month                  1-12 or JAN-DEC
    │     │  │  └ day of month              1-31
    │     │  └ hour                         0-23
    │     └ minute                          0-59
    └ second                                0-59

A field is `*`, a value, a range `a-b` (it may wrap, e.g. `FRI-MON` or `22-2`), a step `a/n`,
`*/n` or `a-b/n` ("every n-th, from a"), or a comma-separated list of these. Exactly one of
day-of-month and day-of-week is `?`, as Quartz requires: an order valid here means the same to
the original Java agents. Quartz's `L`, `W` and `#` are refused with a message saying so.

HQ uses this module to check the orders it serves; the agent controller, to schedule agents.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

__all__ = ["Cron", "CronError"]

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        start=1,
    )
}
_DAYS = {
    name: number
    for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)
}
_SECOND = timedelta(seconds=1)


class CronError(ValueError):
    """An expression that is not a valid schedule; the message names the field."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int] | None = None

    def value(self, text: str) -> int:
        number = self.names.get(text.upper()) if self.names else None
        if number is None:
            if not (text.isascii() and text.isdigit()):
                named = f" or a name ({', '.join(self.names)})" if self.names else ""
                raise CronError(f"{self.name}: {text!r} is not a number{named}")
            number = int(text)
        if not self.low <= number <= self.high:
            raise CronError(f"{self.name}: {number} is outside {self.low}-{self.high}")
        return number

    def parse(self, text: str) -> frozenset[int] | None:
        """The values a field allows; None for `?`."""
        if text == "?":
            if self.name not in ("day-of-month", "day-of-week"):
                raise CronError(f"{self.name}: '?' is only allowed for day-of-month or day-of-week")
            return None
        for special in ("L", "W", "#"):
            if special in text.upper() and not (self.names and _names_only(text, self.names)):
                raise CronError(
                    f"{self.name}: Quartz's '{special}' in {text!r} is not supported; "
                    "use lists, ranges and steps"
                )
        values: set[int] = set()
        for part in text.split(","):
            values.update(self._part(part))
        return frozenset(values)

    def _part(self, part: str) -> list[int]:
        if not part:
            raise CronError(f"{self.name}: empty list entry")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if (
                not (step_text.isascii() and step_text.isdigit())
                or not 1 <= int(step_text) <= self.high - self.low + 1
            ):
                raise CronError(
                    f"{self.name}: the step in {part!r} must be a number from 1 to "
                    f"{self.high - self.low + 1}"
                )
            step = int(step_text)
        if base == "*":
            start, end = self.low, self.high
        elif "-" in base:
            first, _, last = base.partition("-")
            if not first or not last:
                raise CronError(f"{self.name}: {base!r} is not a range a-b")
            start, end = self.value(first), self.value(last)
        elif base:
            start = self.value(base)
            end = self.high if slash else start
        else:
            raise CronError(f"{self.name}: {part!r} needs a start before '/', e.g. 0{part}")
        span = self.high - self.low + 1
        count = (end - start) % span + 1  # a range may wrap around, e.g. 22-2
        return [self.low + (start - self.low + k) % span for k in range(0, count, step)]


def _names_only(text: str, names: Mapping[str, int]) -> bool:
    """True when the letters of `text` are all names (JUL, SAT), not Quartz specials."""
    words = text.replace(",", " ").replace("-", " ").replace("/", " ").split()
    return all((word.isascii() and word.isdigit()) or word.upper() in names for word in words)


_FIELDS = (
    _Field("second", 0, 59),
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 1, 7, _DAYS),
    _Field("year", 1970, 2099),
)


def _sorted(values: frozenset[int] | None) -> tuple[int, ...]:
    assert values is not None  # only the day fields take '?'
    return tuple(sorted(values))


def _next(values: tuple[int, ...], after: int) -> int | None:
    """The smallest of the sorted `values` above `after`."""
    index = bisect.bisect_right(values, after)
    return values[index] if index < len(values) else None


@dataclass(frozen=True)
class Cron:
    """A parsed schedule: `Cron.parse("0/10 * * * * ? *").next_after(moment)`."""

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int] | None  # None: `?`, the day of week decides
    months: tuple[int, ...]
    weekdays: frozenset[int] | None  # 1 = Sunday; None: `?`, the day of month decides
    years: tuple[int, ...]

    @classmethod
    def parse(cls, expression: str) -> Cron:
        if not isinstance(expression, str):
            raise CronError(f"expected a string, found {type(expression).__name__}")
        parts = expression.split()
        if len(parts) not in (6, 7):
            raise CronError(
                f"expected 6 or 7 fields (second minute hour day-of-month month day-of-week "
                f"[year]), found {len(parts)}"
            )
        if len(parts) == 6:
            parts.append("*")
        sets = [field.parse(part) for field, part in zip(_FIELDS, parts, strict=True)]
        seconds, minutes, hours, days, months, weekdays, years = sets
        if (days is None) == (weekdays is None):
            raise CronError(
                "exactly one of day-of-month and day-of-week must be '?' (as in Quartz), "
                f"found {parts[3]!r} and {parts[5]!r}"
            )
        return cls(
            " ".join(expression.split()),
            _sorted(seconds),
            _sorted(minutes),
            _sorted(hours),
            days,
            _sorted(months),
            weekdays,
            _sorted(years),
        )

    def __str__(self) -> str:
        return self.expression

    def matches(self, moment: datetime) -> bool:
        """Whether the schedule fires at this second (in `moment`'s own time zone)."""
        return (
            moment.second in self.seconds
            and moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.month in self.months
            and moment.year in self.years
            and self._day(moment.date())
        )

    def _day(self, day: date) -> bool:
        if self.days is not None:
            return day.day in self.days
        assert self.weekdays is not None
        return day.isoweekday() % 7 + 1 in self.weekdays  # Sunday: isoweekday 7 -> 1

    def next_after(self, moment: datetime) -> datetime | None:
        """The first second strictly after `moment` at which the schedule fires, in
        `moment`'s time zone (naive means UTC); None if it never fires again.

        Across a daylight-saving change a local time that does not exist fires at the same
        instant one hour later; one that occurs twice fires at both."""
        zone = moment.tzinfo or UTC
        moment = moment.replace(tzinfo=zone)
        instant = moment.timestamp()
        found = self._first_after(moment.replace(tzinfo=None), zone, instant)
        if found is None:
            return None
        offset, found_offset = moment.utcoffset(), found.utcoffset()
        if offset is not None and found_offset is not None and found_offset < offset:
            # The clocks went back in between: the repeated local hour was searched only once.
            change = _offset_change(moment, found)
            repeated = self._first_after(
                change.replace(tzinfo=None) - _SECOND, zone, change.timestamp() - 1
            )
            if repeated is not None and repeated.timestamp() < found.timestamp():
                found = repeated
        return found

    def next_timestamp(self, timestamp: float, zone: tzinfo = UTC) -> float | None:
        """`next_after` on POSIX timestamps; the schedule read in `zone`."""
        found = self.next_after(datetime.fromtimestamp(timestamp, zone))
        return None if found is None else found.timestamp()

    def _first_after(self, naive: datetime, zone: tzinfo, instant: float) -> datetime | None:
        """The first matching local time after `naive` whose instant is after `instant`."""
        candidate = naive.replace(microsecond=0) + _SECOND
        while True:
            local = self._next_local(candidate)
            if local is None:
                return None
            later = [stamp for stamp in _instants(local, zone) if stamp > instant]
            if later:
                return datetime.fromtimestamp(min(later), zone)
            candidate = local + _SECOND

    def _next_local(self, moment: datetime) -> datetime | None:
        """The first matching naive local time at or after `moment`."""
        while moment.year <= self.years[-1]:
            if moment.year not in self.years:
                year = _next(self.years, moment.year)
                if year is None:
                    return None
                moment = datetime(year, 1, 1)
            elif moment.month not in self.months:
                month = _next(self.months, moment.month)
                moment = (
                    datetime(moment.year + 1, 1, 1)
                    if month is None
                    else datetime(moment.year, month, 1)
                )
            elif not self._day(moment.date()):
                moment = datetime.combine(moment.date() + timedelta(days=1), time())
            elif moment.hour not in self.hours:
                hour = _next(self.hours, moment.hour)
                moment = (
                    datetime.combine(moment.date() + timedelta(days=1), time())
                    if hour is None
                    else moment.replace(hour=hour, minute=0, second=0)
                )
            elif moment.minute not in self.minutes:
                minute = _next(self.minutes, moment.minute)
                moment = (
                    moment.replace(minute=0, second=0) + timedelta(hours=1)
                    if minute is None
                    else moment.replace(minute=minute, second=0)
                )
            elif moment.second not in self.seconds:
                second = _next(self.seconds, moment.second)
                moment = (
                    moment.replace(second=0) + timedelta(minutes=1)
                    if second is None
                    else moment.replace(second=second)
                )
            else:
                return moment
        return None


def _instants(local: datetime, zone: tzinfo) -> list[float]:
    """The instants a naive local time stands for: one, two when the clocks go back, and when
    they skip it, the instant they pass it (e.g. 02:30 on a spring-forward night is 03:30)."""
    stamps = {
        stamp
        for fold in (0, 1)
        if datetime.fromtimestamp(
            stamp := local.replace(tzinfo=zone, fold=fold).timestamp(), zone
        ).replace(tzinfo=None)
        == local
    }
    return sorted(stamps) or [local.replace(tzinfo=zone, fold=0).timestamp()]


def _offset_change(before: datetime, after: datetime) -> datetime:
    """The first second after `before` with `after`'s UTC offset (bisection)."""
    zone = before.tzinfo
    low, high = int(before.timestamp()), int(after.timestamp())
    target = after.utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, zone)
