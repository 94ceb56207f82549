"""(b) In-process: HQ's decode + validate + bulk-body encode against bare orjson on the same body.

The reference is the least any Python service must do to turn the request into a `_bulk` body:
`orjson.loads` the array, `orjson.dumps` each event after an action line. A second reference,
`orjson.dumps(orjson.loads(body))` of the whole array, is reported beside it. Arms alternate
ABBA in one process; each arm runs long enough (about 0.2 s) to swamp the timer.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from logspace.elastic import bulk
from logspace.errors import InvalidEvents
from logspace.ingest.decode import decode_batch

from .documents import SPACE, make_events
from .report import Figure
from .run import Run, say

ACTION = b'{"create":{}}\n'
PREFIX = "lsbench"


def hq_pipeline(body: bytes) -> bytes:
    """What HQ does between the request body and the `_bulk` request body."""
    events = decode_batch(body, SPACE, prefix=PREFIX).events
    if isinstance(events, bulk.Bulk):  # written in C already
        return events.body
    return bulk.encode(events, SPACE, PREFIX).body


def hq_pipeline_rejecting(body: bytes) -> bytes:
    """The same for a batch with invalid events: HQ finds and describes every problem."""
    try:
        hq_pipeline(body)
    except InvalidEvents as invalid:
        return orjson.dumps(invalid.body())
    raise AssertionError("the batch was meant to be invalid")


def bulk_reference(body: bytes) -> bytes:
    return b"".join([ACTION + orjson.dumps(event) + b"\n" for event in orjson.loads(body)])


def array_reference(body: bytes) -> bytes:
    return orjson.dumps(orjson.loads(body))


@dataclass
class Payload:
    name: str
    body: bytes
    events: int
    invalid: bool = False


def payloads() -> list[Payload]:
    result = [
        Payload(f"{n} events", orjson.dumps(make_events(n, seed=n)), n) for n in (50, 500, 2000)
    ]
    result.append(
        Payload("500 events, unicode", orjson.dumps(make_events(500, seed=5, unicode=True)), 500)
    )
    broken = make_events(500, seed=6)
    for event in broken[::20]:  # 5 %: a wrong type, a missing field
        event["integer-properties"]["status"] = "200"
        del event["system"]
    result.append(Payload("500 events, 5 % invalid", orjson.dumps(broken), 500, invalid=True))
    return result


def _seconds(function: Callable[[bytes], bytes], body: bytes, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        function(body)
    return (time.perf_counter() - started) / repeat


def ratio_pairs(
    payload: Payload, reference: Callable[[bytes], bytes], pairs: int, arm_seconds: float = 0.2
) -> list[float]:
    """Per pair: events/s of HQ's pipeline / events/s of the reference (ABBA order)."""
    pipeline = hq_pipeline_rejecting if payload.invalid else hq_pipeline
    once = max(_seconds(reference, payload.body, 3), _seconds(pipeline, payload.body, 3))
    repeat = max(1, int(arm_seconds / once))
    ratios = []
    for pair in range(pairs):
        if pair % 2 == 0:
            ref = _seconds(reference, payload.body, repeat)
            hq = _seconds(pipeline, payload.body, repeat)
        else:
            hq = _seconds(pipeline, payload.body, repeat)
            ref = _seconds(reference, payload.body, repeat)
        ratios.append(ref / hq)
    return ratios


def us_per_event(payload: Payload, repeat: int = 20) -> float:
    pipeline = hq_pipeline_rejecting if payload.invalid else hq_pipeline
    return 1e6 * min(_seconds(pipeline, payload.body, repeat) for _ in range(3)) / payload.events


def figure(run: Run) -> None:
    pairs = max(run.plan.pairs, 5) + 2
    say(f"(b) in process, {pairs} ABBA pairs per payload")
    rows = []
    for payload in payloads():
        bulk_ratios = ratio_pairs(payload, bulk_reference, pairs)
        array_ratios = ratio_pairs(payload, array_reference, pairs)
        us = us_per_event(payload)
        say(
            f"  {payload.name}: {statistics.median(bulk_ratios):.2f} of bare orjson "
            f"(per-event bulk reference), {statistics.median(array_ratios):.2f} "
            f"(whole-array reference), {us:.2f} us/event"
        )
        rows.append(
            f"| {payload.name} | {len(payload.body) // payload.events} | "
            f"{statistics.median(bulk_ratios):.2f} (worst {min(bulk_ratios):.2f}) | "
            f"{statistics.median(array_ratios):.2f} (worst {min(array_ratios):.2f}) | "
            f"{us:.2f} |"
        )
        if payload.name == "500 events":
            run.figures.append(
                Figure(
                    "b",
                    "decode+validate+encode / bare orjson loads+dumps (500 events)",
                    bulk_ratios,
                    ">= 0.75",
                    ">= 1.0",
                )
            )
            run.figures.append(
                Figure(
                    "b-array",
                    "same, against `orjson.dumps(orjson.loads(body))` of the array",
                    array_ratios,
                    "",
                )
            )
    run.appendix.append(
        "### (b) In process, per payload\n\n"
        "Reference: `b''.join(ACTION + orjson.dumps(e) + b'\\n' for e in "
        "orjson.loads(body))` (design section 5.3); the whole-array reference is "
        "`orjson.dumps(orjson.loads(body))`. Ratios are events/s of HQ's pipeline over "
        "the reference's.\n\n"
        "| payload | bytes/event | ratio, bulk reference | ratio, array reference | "
        "HQ us/event |\n|---|---|---|---|---|\n" + "\n".join(rows)
    )
