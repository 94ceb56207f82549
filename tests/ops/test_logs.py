"""The log formatters: one record is one line (plus its indented traceback), whatever text the
record carries, in text and in JSON."""

from __future__ import annotations

import asyncio
import io
import logging
import logging.config
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from logspace.ops import accesslog, logs
from logspace.ops.logs import JsonFormatter, LoopFlushedHandler, TextFormatter, escape

HOSTILE = "a\nERROR logspace.auth: forged\r\x1b[2J\x00\x7f\x85\u2028\u2029 \\x0a"
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def record(message: str, *args: object, **fields: object) -> logging.LogRecord:
    made = logging.LogRecord("logspace.test", logging.INFO, __file__, 1, message, args, None)
    made.fields = fields
    return made


def failed_record(message: str) -> logging.LogRecord:
    try:
        raise ValueError(message)
    except ValueError:
        made = logging.LogRecord(
            "logspace.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    return made


def test_escape_leaves_one_unambiguous_line() -> None:
    assert escape(HOSTILE) == (
        "a\\x0aERROR logspace.auth: forged\\x0d\\x1b[2J\\x00\\x7f\\x85\\u2028\\u2029 \\\\x0a"
    )
    assert escape('plain text: ünïcode, quotes " and = stay') == (
        'plain text: ünïcode, quotes " and = stay'
    )
    assert len(escape(LINE_BREAKS).splitlines()) == 1


def test_a_text_record_is_one_line_whatever_its_message_and_fields() -> None:
    line = TextFormatter().format(record("GET %s 404", HOSTILE, path=HOSTILE, status=404))

    assert line.splitlines() == [line]
    assert line.startswith("INFO logspace.test: GET a\\x0aERROR")
    assert line.endswith(
        ' path="a\\x0aERROR logspace.auth: forged\\x0d\\x1b[2J\\x00\\x7f\\x85\\u2028\\u2029'
        ' \\\\x0a" status=404'
    )


def test_text_field_values_that_could_pass_for_fields_are_quoted() -> None:
    line = TextFormatter().format(record("m", path='/x status=200 "', space="", n=3))

    assert line == 'INFO logspace.test: m path="/x status=200 \\"" n=3'


def test_a_value_seen_before_is_written_as_it_was_the_first_time() -> None:
    formatter = TextFormatter()
    fields = {"path": '/x status=200 "', "space": HOSTILE[:40], "error": "OVERLOADED"}
    first = formatter.format(record("m", **fields))

    assert [formatter.format(record("m", **fields)) for _ in range(3)] == [first] * 3
    assert first == (
        'INFO logspace.test: m path="/x status=200 \\"" '
        'space="a\\x0aERROR logspace.auth: forged\\x0d\\x1b[2J\\x00\\x7f\\x85\\u2028\\u2029 " '
        "error=OVERLOADED"
    )


def test_a_traceback_is_indented_so_no_line_of_it_passes_for_a_record() -> None:
    line = TextFormatter().format(failed_record("bad\nERROR logspace.auth: forged"))

    head, *rest = line.split("\n")
    assert head == "ERROR logspace.test: failed"
    assert rest
    assert all(part.startswith("    ") for part in rest)
    assert "    ERROR logspace.auth: forged" in rest


def test_a_json_record_is_one_line_with_every_value_intact() -> None:
    line = JsonFormatter().format(record("GET %s 404", HOSTILE, path=HOSTILE))

    assert not any(char in line for char in LINE_BREAKS + "\x1b\x00\x7f")
    entry = orjson.loads(line)
    assert entry["message"] == f"GET {HOSTILE} 404"
    assert entry["path"] == HOSTILE


def test_a_json_traceback_stays_on_the_line() -> None:
    line = JsonFormatter().format(failed_record("bad\u2028ERROR forged"))

    assert line.splitlines() == [line]
    assert "bad\u2028ERROR forged" in orjson.loads(line)["exception"]


@pytest.mark.parametrize(
    "opening",
    [
        {"buffering": 1},  # line-buffered, as stderr is on a terminal
        {"buffering": 0, "write_through": True},  # as stderr is on a pipe or file
    ],
    ids=["line-buffered", "written-through"],
)
def test_access_lines_of_one_loop_iteration_are_written_when_it_ends(
    opening: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "hq.log"
    if opening["buffering"] == 0:  # Python opens a stderr that is no terminal this way
        stream = io.TextIOWrapper(path.open("wb", buffering=0), write_through=True)
    else:
        stream = path.open("w", buffering=1)
    with stream:
        handler = LoopFlushedHandler(stream)
        handler.setFormatter(TextFormatter())

        async def log_two() -> tuple[str, str]:
            handler.write_line("first")
            handler.write_line("second")
            during = path.read_text()
            await asyncio.sleep(0)
            return during, path.read_text()

        during, after = asyncio.run(log_two())
        assert during == ""
        assert after == "first\nsecond\n"

        # Any other record goes at once, with the access lines before it: the server's
        # last messages before the process ends by the signal it caught are not lost.
        async def log_line_and_record() -> str:
            handler.write_line("third")
            handler.handle(record("shutting down"))
            return path.read_text()

        assert asyncio.run(log_line_and_record()).endswith(
            "third\nINFO logspace.test: shutting down\n"
        )

        # Outside a running loop, as at start-up and shutdown, a line is written at once.
        handler.write_line("fourth")
        assert path.read_text().endswith("fourth\n")

        # A loop that stops before the turn that would write a line: the line goes at exit.
        loop = asyncio.new_event_loop()

        def log_and_stop() -> None:
            handler.write_line("fifth")
            loop.stop()

        loop.call_soon(log_and_stop)
        loop.run_forever()
        loop.close()
        assert "fifth" not in path.read_text()
        handler.flush()  # as `logging.shutdown` does
        assert path.read_text().endswith("fifth\n")


def test_access_lines_that_cannot_be_written_are_reported_as_a_record_would_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    handler = LoopFlushedHandler(Broken())
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", reported.append)

    async def log_two() -> None:
        handler.write_line("first")
        handler.write_line("second")
        await asyncio.sleep(0)

    asyncio.run(log_two())  # the flush at the end of the turn fails: no error escapes

    [failed] = reported
    assert failed.getMessage() == "2 access line(s)"
    handler.write_line("third")  # and the lines that failed are not written again
    assert [r.getMessage() for r in reported] == ["2 access line(s)", "1 access line(s)"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_access_line_written_directly_is_the_line_logging_writes(
    log_format: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As HQ configures its logs, `log_access` formats the line itself and hands it to the
    handler; when anything else listens (here a filter), the record goes through `logging`.
    Both ways write the same line."""
    monkeypatch.setattr(accesslog.time, "perf_counter", lambda: 12.0)
    monkeypatch.setattr(accesslog.time, "time", lambda: 1_764_500_000.25)
    monkeypatch.setattr(logging, "_startTime", 0.0)  # LogRecord reads time.time_ns
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    path = tmp_path / "hq.log"
    cases = [
        ("PUT", "/events", 202, {"space": "ops"}, "req-1"),
        ("PUT", "/api/events", 400, {"space": "a b", "error": "INVALID_JSON"}, "req-1"),
        ("GET", HOSTILE, 404, {}, "req-1"),
        ("PUT", "/events", 403, {"error": "MISSING_SPACE_TOKEN"}, None),
        ("PUT", "/events", 202, {"space": "ops"}, None),
    ]
    try:
        logging.config.dictConfig(logs.logging_config(log_format))
        (handler,) = root.handlers
        assert isinstance(handler, LoopFlushedHandler)
        handler.setStream(path.open("w"))
        lines: dict[str, list[str]] = {}
        for way in ("direct", "logging"):
            if way == "logging":
                accesslog.access_log.addFilter(lambda record: True)
            for method, path_, status, state, request_id in cases:
                token = logs.REQUEST_ID.set(request_id)
                scope = {"method": method, "path": path_}
                accesslog.log_access(scope, status, 11.9995, dict(state))
                logs.REQUEST_ID.reset(token)
            handler.flush()
            lines[way] = path.read_text().splitlines()[len(cases) if way == "logging" else 0 :]
    finally:
        accesslog.access_log.filters.clear()
        root.handlers[:], level = saved
        root.setLevel(level)
    assert len(lines["direct"]) == len(cases)
    assert lines["direct"] == lines["logging"]
    if log_format == "text":
        assert lines["direct"][0] == (
            "INFO logspace.access: PUT /events 202 method=PUT path=/events status=202 "
            "duration_ms=0.5 space=ops request_id=req-1"
        )
    else:
        assert orjson.loads(lines["direct"][1])["error"] == "INVALID_JSON"


def test_a_request_keeps_its_plain_id_and_otherwise_gets_a_new_one_of_32_hex_digits() -> None:
    assert accesslog.request_id_from("req-1") == "req-1"
    made = {accesslog.request_id_from(given) for given in (None, "", "a b", "x" * 300) * 50}
    assert len(made) == 200  # new each time
    assert all(len(i) == 32 and set(i) <= set("0123456789abcdef") for i in made)
