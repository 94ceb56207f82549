"""Batching, retries and poison handling, driven answer by answer with a fake clock."""

from __future__ import annotations

import gzip
import logging
from typing import Any

import orjson
import pytest

from logspace.agent import AgentConfig, DiskQueue, Dropped, encode_event
from logspace.agent.shipper import POISON_ATTEMPTS, Attempt, Shipper
from logspace.testing import make_event


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """A shipper on an in-memory queue, a fake clock, and the drops it reported."""

    def __init__(self, **changes: Any) -> None:
        options: dict[str, Any] = {"batch_max_age": 5.0, "backoff_initial": 1.0}
        options.update(changes)
        self.config = AgentConfig(token="t", **options)
        self.clock = Clock()
        self.queue = DiskQueue(None, clock=self.clock)
        self.dropped: list[Dropped] = []
        # random() == 1.0: every backoff is exactly initial * 2^(n-1).
        self.shipper = Shipper(
            self.queue,
            self.config,
            self.dropped.extend,
            clock=self.clock,
            wall=self.clock,
            random=lambda: 1.0,
        )

    def put(self, count: int, **fields: Any) -> list[str]:
        events = [make_event(**fields) for _ in range(count)]
        self.queue.put([encode_event(e) for e in events])
        return [e["id"] for e in events]

    def attempt(self) -> Attempt:
        attempt = self.shipper.next_attempt()
        assert attempt is not None
        return attempt

    def answer(self, status: int, body: Any = b"", **headers: str) -> Attempt:
        attempt = self.attempt()
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        self.shipper.answered(attempt, status, headers, content)
        return attempt


def ids(attempt: Attempt) -> list[str]:
    body = attempt.body
    if attempt.headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return [event["id"] for event in orjson.loads(body)]


def error(type_: str, *indexes: int) -> dict[str, Any]:
    return {
        "type": type_,
        "message": "m",
        "parameters": {
            "errors": [{"index": i, "path": f"$[{i}]", "message": "no"} for i in indexes]
        },
    }


def test_a_batch_waits_until_its_oldest_event_is_old_enough() -> None:
    rig = Rig()
    rig.put(1)

    assert rig.shipper.next_attempt() is None
    assert rig.shipper.wait_time() == 5.0
    rig.clock.now += 5
    assert len(rig.attempt().rows) == 1


def test_a_batch_goes_at_once_when_it_has_enough_events_or_bytes() -> None:
    by_count = Rig(batch_max_events=3)
    by_count.put(3)
    assert len(by_count.attempt().rows) == 3

    size = len(encode_event(make_event()))
    by_bytes = Rig(batch_max_bytes=size + 1)
    by_bytes.put(1)
    assert by_bytes.shipper.next_attempt() is None
    by_bytes.put(1)
    assert len(by_bytes.attempt().rows) == 1


def test_flushing_ignores_the_batch_age() -> None:
    rig = Rig()
    rig.put(2)
    rig.shipper.flushing = 1
    assert len(rig.attempt().rows) == 2


def test_a_commit_wakes_the_loop_only_when_it_can_bring_the_next_batch_forward() -> None:
    rig = Rig(batch_max_events=3)
    rig.put(1)
    # Alone in the queue: the loop was waiting for nothing and must start the age's clock.
    assert rig.shipper.due_on_commit(alone=True)
    rig.put(1)
    # Behind an older event: the loop already waits for that one's age.
    assert not rig.shipper.due_on_commit(alone=False)
    rig.shipper.flushing = 1
    assert rig.shipper.due_on_commit(alone=False)
    rig.shipper.flushing = 0
    rig.put(1)
    # A full batch goes at once.
    assert rig.shipper.due_on_commit(alone=False)


def test_nothing_to_send_means_no_attempt_and_no_deadline() -> None:
    rig = Rig()
    assert rig.shipper.next_attempt() is None
    assert rig.shipper.wait_time() is None


def test_a_delivered_batch_leaves_the_queue_and_counts_as_sent() -> None:
    rig = Rig(batch_max_age=0)
    sent = rig.put(3)

    attempt = rig.answer(202)

    assert ids(attempt) == sent
    assert attempt.headers == {
        "content-type": "application/json",
        "content-encoding": "gzip",
        "logspace.space-token": "t",
    }
    stats = rig.queue.stats()
    assert (stats.sent, stats.dropped, stats.queued) == (3, 0, 0)


def test_retry_after_is_honoured() -> None:
    rig = Rig(batch_max_age=0)
    rig.put(1)

    rig.answer(503, error("STORE_UNAVAILABLE"), **{"retry-after": "7"})

    assert rig.shipper.wait_time() == 7.0
    rig.clock.now += 6.9
    assert rig.shipper.next_attempt() is None
    rig.clock.now += 0.1
    rig.answer(202)
    assert rig.queue.stats().sent == 1


def test_failures_back_off_exponentially_and_success_resets_it() -> None:
    rig = Rig(batch_max_age=0, backoff_max=5.0)
    rig.put(1)
    waits = []
    for _ in range(5):
        rig.shipper.failed(rig.attempt(), "refused")
        waits.append(rig.shipper.wait_time())
        rig.clock.now += waits[-1] or 0

    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    rig.answer(202)
    assert rig.shipper.failures == 0


def test_invalid_events_are_dropped_and_exactly_the_others_sent_again_at_once() -> None:
    rig = Rig(batch_max_age=0)
    sent = rig.put(4)

    rig.answer(400, error("INVALID_EVENTS", 1, 3))
    again = rig.answer(202)

    assert ids(again) == [sent[0], sent[2]]
    assert [(d.reason, d.event and d.event["id"]) for d in rig.dropped] == [
        ("invalid", sent[1]),
        ("invalid", sent[3]),
    ]
    assert rig.dropped[0].message == "no at $[1]"
    stats = rig.queue.stats()
    assert (stats.sent, stats.dropped, stats.queued) == (2, 2, 0)


def test_events_elasticsearch_refused_are_dropped_and_the_rest_counts_as_sent() -> None:
    rig = Rig(batch_max_age=0)
    sent = rig.put(3)

    rig.answer(422, error("EVENTS_NOT_STORED", 2))

    assert [(d.reason, d.event and d.event["id"]) for d in rig.dropped] == [("refused", sent[2])]
    stats = rig.queue.stats()
    assert (stats.sent, stats.dropped, stats.queued) == (2, 1, 0)


def test_a_batch_too_large_is_split_until_it_fits_and_a_single_event_is_dropped() -> None:
    rig = Rig(batch_max_age=0, batch_max_events=4)
    sent = rig.put(4)

    first = rig.answer(413, error("REQUEST_TOO_LARGE"))
    half = rig.answer(413, error("REQUEST_TOO_LARGE"))
    single = rig.answer(413, error("REQUEST_TOO_LARGE"))
    # After a split the batches grow back by doubling with each success.
    rest = [rig.answer(202), rig.answer(202)]

    assert [len(a.rows) for a in (first, half, single, *rest)] == [4, 2, 1, 1, 2]
    assert [d.reason for d in rig.dropped] == ["rejected"]
    assert ids(rest[0]) + ids(rest[1]) == sent[1:]
    assert rig.queue.stats().queued == 0


def test_a_batch_hq_cannot_parse_is_bisected_down_to_the_culprit() -> None:
    rig = Rig(batch_max_age=0)
    rig.put(2)

    rig.answer(400, error("INVALID_JSON"))
    rig.answer(400, error("INVALID_JSON"))
    rig.answer(202)

    assert [d.reason for d in rig.dropped] == ["rejected"]
    assert rig.queue.stats().sent == 1


def test_a_batch_that_keeps_causing_500_is_split_and_finally_dropped_as_poison() -> None:
    rig = Rig(batch_max_age=0, backoff_max=1.0)
    rig.put(2)

    sizes = []
    while not rig.dropped:
        sizes.append(len(rig.answer(500, error("INTERNAL_ERROR")).rows))
        rig.clock.now += 1

    assert sizes == [2] * POISON_ATTEMPTS + [1] * POISON_ATTEMPTS
    assert rig.dropped[0].reason == "poison"
    rig.answer(202)
    assert rig.queue.stats().queued == 0


def test_503_and_429_never_drop_anything() -> None:
    rig = Rig(batch_max_age=0, backoff_max=1.0)
    rig.put(1)
    for status in [503, 429, 502] * 5:
        rig.answer(status)
        rig.clock.now += 1
    assert rig.dropped == []
    assert len(rig.queue) == 1


def test_configuration_problems_keep_everything_queued_and_say_so_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig(batch_max_age=0)
    rig.put(2)

    with caplog.at_level(logging.ERROR, logger="logspace.agent"):
        rig.answer(403, {"type": "INVALID_SPACE_TOKEN", "message": "Unrecognized space-token 't'."})

    assert rig.dropped == []
    assert len(rig.queue) == 2
    assert rig.shipper.wait_time() == 1.0
    assert "check the HQ URL and space token" in caplog.text
    assert "INVALID_SPACE_TOKEN" in caplog.text


def test_an_answer_other_than_202_is_not_success() -> None:
    rig = Rig(batch_max_age=0)
    rig.put(1)
    rig.answer(200)
    assert len(rig.queue) == 1
    assert rig.queue.stats().sent == 0


def test_gzip_is_used_when_asked_and_given_up_when_hq_answers_415() -> None:
    rig = Rig(batch_max_age=0, gzip=True)
    sent = rig.put(2)

    compressed = rig.answer(415, error("UNSUPPORTED_CONTENT_ENCODING"))
    plain = rig.answer(202)

    assert compressed.headers["content-encoding"] == "gzip"
    assert ids(compressed) == sent
    assert "content-encoding" not in plain.headers
    assert ids(plain) == sent


def test_415_without_gzip_is_a_configuration_problem() -> None:
    rig = Rig(batch_max_age=0, gzip=False)
    rig.put(1)
    rig.answer(415)
    assert rig.shipper.failures == 1
    assert len(rig.queue) == 1
