"""The Quartz-style cron schedules of orders: parsing, every refusal with its message, and the
next firing time, checked against a naive oracle."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logspace.cron import Cron, CronError

VIENNA = ZoneInfo("Europe/Vienna")


def at(text: str, zone: object = UTC) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)  # type: ignore[arg-type]


def firings(expression: str, start: datetime, count: int) -> list[str]:
    cron = Cron.parse(expression)
    found = []
    moment: datetime | None = start
    for _ in range(count):
        assert moment is not None
        moment = cron.next_after(moment)
        found.append("never" if moment is None else moment.isoformat())
    return found


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("0/10 * * * * ? *", "2015-11-17T13:05:55",
         ["2015-11-17T13:06:00+00:00", "2015-11-17T13:06:10+00:00", "2015-11-17T13:06:20+00:00"]),
        ("*/20 * * * * ?", "2015-11-17T13:05:40",
         ["2015-11-17T13:06:00+00:00", "2015-11-17T13:06:20+00:00", "2015-11-17T13:06:40+00:00"]),
        ("15,45 * * * * ?", "2015-11-17T13:05:15",
         ["2015-11-17T13:05:45+00:00", "2015-11-17T13:06:15+00:00", "2015-11-17T13:06:45+00:00"]),
        ("0 0 12 ? * MON-FRI", "2015-11-20T12:00:00",  # a Friday, at noon
         ["2015-11-23T12:00:00+00:00", "2015-11-24T12:00:00+00:00", "2015-11-25T12:00:00+00:00"]),
        ("0 0 0 ? * FRI-MON", "2015-11-17T00:00:00",  # a range that wraps around the week
         ["2015-11-20T00:00:00+00:00", "2015-11-21T00:00:00+00:00", "2015-11-22T00:00:00+00:00",
          "2015-11-23T00:00:00+00:00", "2015-11-27T00:00:00+00:00"]),
        ("0 0 22-2/2 * * ?", "2015-11-17T12:00:00",  # hours 22, 0, 2
         ["2015-11-17T22:00:00+00:00", "2015-11-18T00:00:00+00:00", "2015-11-18T02:00:00+00:00",
          "2015-11-18T22:00:00+00:00"]),
        ("0 30 9 31 * ?", "2015-11-17T00:00:00",  # months without a 31st are skipped
         ["2015-12-31T09:30:00+00:00", "2016-01-31T09:30:00+00:00", "2016-03-31T09:30:00+00:00"]),
        ("0 0 0 29 FEB ?", "2015-01-01T00:00:00",
         ["2016-02-29T00:00:00+00:00", "2020-02-29T00:00:00+00:00", "2024-02-29T00:00:00+00:00"]),
        ("0 0 0 1 1 ? 2016/2", "2015-06-01T00:00:00",
         ["2016-01-01T00:00:00+00:00", "2018-01-01T00:00:00+00:00", "2020-01-01T00:00:00+00:00"]),
        ("59 59 23 31 12 ? 2098-2099", "2098-12-31T23:59:59",
         ["2099-12-31T23:59:59+00:00", "never"]),
        ("0 0 0 30 2 ?", "2015-01-01T00:00:00", ["never"]),
        ("0 0 0 1 1 ? 2015", "2015-01-01T00:00:00", ["never"]),
    ],
)  # fmt: skip
def test_the_next_firings_of_a_schedule(expression: str, start: str, expected: list[str]) -> None:
    assert firings(expression, at(start), len(expected)) == expected


def test_names_and_numbers_are_the_same_and_case_does_not_matter() -> None:
    named = Cron.parse("0 0 0 ? jan,Mar-MAY sun,SAT")
    numbered = Cron.parse("0 0 0 ? 1,3-5 1,7")

    assert (named.months, named.weekdays) == (numbered.months, numbered.weekdays)
    assert named.weekdays == frozenset({1, 7})


def test_a_six_field_expression_has_any_year_and_extra_spaces_do_not_matter() -> None:
    six = Cron.parse("  0/10   * * * * ?  ")

    assert six.years == tuple(range(1970, 2100))
    assert str(six) == "0/10 * * * * ?"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * * *", "expected 6 or 7 fields (second minute hour day-of-month month "
                      "day-of-week [year]), found 5"),
        ("0 0 0 1 1 ? 2015 x", "expected 6 or 7 fields"),
        ("* * * * * *", "exactly one of day-of-month and day-of-week must be '?' (as in Quartz), "
                        "found '*' and '*'"),
        ("0 0 0 ? * ?", "exactly one of day-of-month and day-of-week must be '?'"),
        ("? * * * * *", "second: '?' is only allowed for day-of-month or day-of-week"),
        ("60 * * * * ?", "second: 60 is outside 0-59"),
        ("0 0 24 * * ?", "hour: 24 is outside 0-23"),
        ("0 0 0 0 * ?", "day-of-month: 0 is outside 1-31"),
        ("0 0 0 ? * 8", "day-of-week: 8 is outside 1-7"),
        ("0 0 0 1 1 ? 1969", "year: 1969 is outside 1970-2099"),
        ("0 0 0 ? * MONDAY", "day-of-week: 'MONDAY' is not a number or a name (SUN, MON, TUE, "
                             "WED, THU, FRI, SAT)"),
        ("x * * * * ?", "second: 'x' is not a number"),
        ("\u00b2 * * * * ?", "second: '\u00b2' is not a number"),  # a digit, but not 0-9
        ("*/0 * * * * ?", "second: the step in '*/0' must be a number from 1 to 60"),
        ("0/x * * * * ?", "second: the step in '0/x' must be a number from 1 to 60"),
        ("/5 * * * * ?", "second: '/5' needs a start before '/', e.g. 0/5"),
        ("1- * * * * ?", "second: '1-' is not a range a-b"),
        ("1,,2 * * * * ?", "second: empty list entry"),
        ("0 0 0 L * ?", "day-of-month: Quartz's 'L' in 'L' is not supported; use lists, ranges "
                        "and steps"),
        ("0 0 0 15W * ?", "day-of-month: Quartz's 'W' in '15W' is not supported"),
        ("0 0 0 ? * 6#3", "day-of-week: Quartz's '#' in '6#3' is not supported"),
        ("0 0 0 ? * 6L", "day-of-week: Quartz's 'L' in '6L' is not supported"),
    ],
)  # fmt: skip
def test_invalid_expressions_are_refused_naming_the_field(expression: str, message: str) -> None:
    with pytest.raises(CronError) as raised:
        Cron.parse(expression)

    assert str(raised.value).startswith(message)


def test_a_local_time_the_clocks_skip_fires_when_they_pass_it() -> None:
    """Spring forward in Vienna: 02:00-03:00 does not exist on 2015-03-29."""
    assert firings("0 30 2 * * ?", at("2015-03-28T12:00:00", VIENNA), 2) == [
        "2015-03-29T03:30:00+02:00",
        "2015-03-30T02:30:00+02:00",
    ]
    assert firings("0/20 * * * * ?", at("2015-03-29T01:59:40", VIENNA), 2) == [
        "2015-03-29T03:00:00+02:00",
        "2015-03-29T03:00:20+02:00",
    ]


def test_a_local_time_that_occurs_twice_fires_at_both() -> None:
    """Fall back in Vienna: 02:00-03:00 occurs twice on 2015-10-25."""
    moments = []
    moment: datetime | None = at("2015-10-25T02:59:40", VIENNA)
    cron = Cron.parse("0/20 * * * * ?")
    for _ in range(3):
        assert moment is not None
        moment = cron.next_after(moment)
        assert moment is not None
        moments.append(moment.astimezone(UTC).isoformat())

    assert moments == [
        "2015-10-25T01:00:00+00:00",  # 02:00 CET, the second time round
        "2015-10-25T01:00:20+00:00",
        "2015-10-25T01:00:40+00:00",
    ]


def test_next_timestamp_reads_the_schedule_in_the_given_zone() -> None:
    cron = Cron.parse("0 0 3 * * ?")
    start = at("2015-11-17T12:00:00").timestamp()

    assert cron.next_timestamp(start) == at("2015-11-18T03:00:00").timestamp()
    assert cron.next_timestamp(start, VIENNA) == at("2015-11-18T02:00:00").timestamp()


# -- properties ---------------------------------------------------------------------------

FIELDS = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (1, 7)]


@st.composite
def parts(draw: st.DrawFn, low: int, high: int) -> tuple[str, set[int]]:
    """One list entry of a field, and the values it means, computed the simple way."""
    kind = draw(st.sampled_from(["value", "range", "step", "range-step", "star-step"]))
    start = draw(st.integers(low, high))
    end = draw(st.integers(low, high))
    step = draw(st.integers(1, high - low + 1))
    cycle = list(range(start, high + 1)) + list(range(low, start))
    through = cycle[: cycle.index(end) + 1]
    if kind == "value":
        return str(start), {start}
    if kind == "range":
        return f"{start}-{end}", set(through)
    if kind == "step":
        return f"{start}/{step}", set(range(start, high + 1, step))
    if kind == "range-step":
        return f"{start}-{end}/{step}", set(through[::step])
    return f"*/{step}", set(range(low, high + 1, step))


@st.composite
def fields(draw: st.DrawFn, low: int, high: int) -> tuple[str, set[int]]:
    if draw(st.booleans()):
        return "*", set(range(low, high + 1))
    entries = draw(st.lists(parts(low, high), min_size=1, max_size=3))
    return ",".join(text for text, _ in entries), set().union(*(values for _, values in entries))


@st.composite
def schedules(draw: st.DrawFn) -> tuple[str, list[set[int] | None]]:
    drawn = [draw(fields(low, high)) for low, high in FIELDS]
    texts = [text for text, _ in drawn]
    values: list[set[int] | None] = [v for _, v in drawn]
    by_weekday = draw(st.booleans())
    texts[3 if by_weekday else 5] = "?"
    values[3 if by_weekday else 5] = None
    return " ".join(texts), values


def oracle(values: list[set[int] | None], after: datetime) -> datetime | None:
    """The next firing, found by trying every matching day and time in turn."""
    seconds, minutes, hours, days, months, weekdays = values
    assert seconds
    assert minutes
    assert hours
    assert months
    day = after.date()
    for _ in range(366 * 9):  # every calendar pattern repeats within 8 years (leap days)
        weekday = day.isoweekday() % 7 + 1
        if day.month in months and (
            day.day in days if days is not None else weekday in (weekdays or set())
        ):
            for hour, minute, second in itertools.product(
                sorted(hours), sorted(minutes), sorted(seconds)
            ):
                moment = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)
                if moment > after:
                    return moment
        day += timedelta(days=1)
    return None


@given(
    schedules(),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2080, 1, 1)),
)
@settings(max_examples=300, deadline=None)
def test_next_after_agrees_with_a_naive_oracle(
    schedule: tuple[str, list[set[int] | None]], start: datetime
) -> None:
    expression, values = schedule
    cron = Cron.parse(expression)
    after = start.replace(tzinfo=UTC)

    found = cron.next_after(after)

    assert found == oracle(values, after)
    if found is not None:
        assert cron.matches(found)


@given(schedules())
def test_parsing_means_exactly_the_values_of_each_entry(
    schedule: tuple[str, list[set[int] | None]],
) -> None:
    expression, values = schedule
    cron = Cron.parse(expression)

    seconds, minutes, hours, days, months, weekdays = values
    assert set(cron.seconds) == seconds
    assert set(cron.minutes) == minutes
    assert set(cron.hours) == hours
    assert cron.days == (None if days is None else frozenset(days))
    assert set(cron.months) == months
    assert cron.weekdays == (None if weekdays is None else frozenset(weekdays))


@given(
    st.one_of(
        st.text(max_size=40), st.text(alphabet="0123456789*?/-,LW# JANMOFRI\u00b2", max_size=40)
    )
)
def test_any_text_parses_or_is_refused_with_a_cron_error(text: str) -> None:
    try:
        cron = Cron.parse(text)
    except CronError as error:
        assert str(error)
    else:
        assert Cron.parse(str(cron)) == cron


def test_matches_uses_the_day_of_week_with_sunday_as_one() -> None:
    sunday = datetime(2015, 11, 22, 0, 0, 0, tzinfo=UTC)

    assert Cron.parse("0 0 0 ? * 1").matches(sunday)
    assert not Cron.parse("0 0 0 ? * 2").matches(sunday)
    assert date(2015, 11, 22).isoweekday() == 7
