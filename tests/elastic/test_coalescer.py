"""The coalescer (and the writer above it) with a scripted `send` in place of Elasticsearch:
shared bulks, each contribution answered from its own items; what concerns the bulk reaches
everyone in it; indices that hold bulks are kept apart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from elastic_transport import ConnectionError as TransportConnectionError

from logspace.elastic import bulk
from logspace.elastic.client import connect
from logspace.elastic.coalescer import Closed, Coalescer, HeldUp, Unallocatable
from logspace.elastic.flushpolicy import FlushPolicy
from logspace.elastic.writer import Writer
from logspace.errors import StoreUnavailable
from logspace.settings import Settings
from logspace.testing import make_event

pytestmark = pytest.mark.anyio

POLICY = FlushPolicy(max_events=1000, max_bytes=1 << 20, max_wait=0.05, concurrency=1)


def lines(*ids: str, index: str = "i") -> bytes:
    return b"".join(
        b'{"create":{"_index":"%s","_id":"%s"}}\n{}\n' % (index.encode(), i.encode()) for i in ids
    )


class Script:
    """Records every bulk body; answers with `answer(body)`, after `gate` opens if set."""

    def __init__(self, answer: Callable[[bytes], dict[str, Any]]) -> None:
        self.answer = answer
        self.bodies: list[bytes] = []
        self.gate: asyncio.Event | None = None
        self.sent: list[str] = []

    async def send(
        self, body: bytes, deadline: float, indices: Callable[[], list[str]]
    ) -> dict[str, Any]:
        self.bodies.append(body)
        if self.gate is not None:
            await self.gate.wait()
        return self.answer(body)

    def bulk_sent(self, reason: str, events: int, size: int) -> None:
        self.sent.append(reason)

    def bulk_waited(self, seconds: float) -> None:
        pass


def statuses(by_id: dict[str, int]) -> Callable[[bytes], dict[str, Any]]:
    def answer(body: bytes) -> dict[str, Any]:
        ids = [line.split(b'"_id":"')[1].split(b'"')[0].decode() for line in body.splitlines()[::2]]
        items = [{"create": {"status": by_id.get(i, 201)}} for i in ids]
        return {"errors": any(by_id.get(i, 201) >= 300 for i in ids), "items": items}

    return answer


def later(seconds: float = 30.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def submit(coalescer: Coalescer, *ids: str, index: str = "i", deadline: float = 30.0) -> Any:
    return await coalescer.submit(
        lines(*ids, index=index), len(ids), later(deadline), lambda: [index]
    )


async def gathered(script: Script, coalescer: Coalescer, *batches: tuple[str, ...]) -> list[Any]:
    """Hold a first bulk in flight, let `batches` gather behind it, then answer."""
    script.gate = asyncio.Event()
    first = asyncio.create_task(submit(coalescer, "first"))
    await asyncio.sleep(0.01)
    tasks = [asyncio.create_task(submit(coalescer, *ids)) for ids in batches]
    await asyncio.sleep(0.01)
    script.gate.set()
    return await asyncio.gather(first, *tasks, return_exceptions=True)


async def test_requests_that_arrive_while_a_bulk_is_in_flight_share_the_next_one() -> None:
    script = Script(statuses({"b1": 400}))
    coalescer = Coalescer(script.send, POLICY, script)

    first, a, b = await gathered(script, coalescer, ("a0", "a1"), ("b0", "b1", "b2"))

    assert len(script.bodies) == 2
    assert script.bodies[1] == lines("a0", "a1") + lines("b0", "b1", "b2")
    assert script.sent == ["idle", "idle"]
    assert first == {"errors": False}
    # Each gets its own items, in its own order: a clean part of an erring bulk has none.
    assert [item["create"]["status"] for item in a["items"]] == [201, 201]
    assert [item["create"]["status"] for item in b["items"]] == [201, 400, 201]


async def test_a_failure_of_the_whole_bulk_reaches_everyone_in_it() -> None:
    failure = TransportConnectionError("connection refused")

    def refuse(body: bytes) -> dict[str, Any]:
        raise failure

    script = Script(refuse)
    coalescer = Coalescer(script.send, POLICY, script)

    answers = await gathered(script, coalescer, ("a0",), ("b0",))

    assert answers == [failure, failure, failure]
    assert len(script.bodies) == 2


async def test_a_request_that_stops_waiting_is_left_out_of_its_bulk() -> None:
    script = Script(statuses({}))
    coalescer = Coalescer(script.send, POLICY, script)
    script.gate = asyncio.Event()
    first = asyncio.create_task(submit(coalescer, "first"))
    await asyncio.sleep(0.01)
    impatient = asyncio.create_task(submit(coalescer, "late", deadline=0.01))
    patient = asyncio.create_task(submit(coalescer, "kept"))
    await asyncio.sleep(0.05)
    script.gate.set()

    with pytest.raises(TimeoutError):
        await impatient
    assert await patient == {"errors": False}
    await first
    assert script.bodies[1] == lines("kept")


async def test_an_index_that_holds_a_bulk_fails_its_writes_and_lets_the_others_try_again() -> None:
    """The writes to the unallocatable index get Elasticsearch's reason; the others are told
    to send again; afterwards writes to that index go alone and take no bulk slot."""
    script = Script(statuses({}))
    gates: dict[str, asyncio.Event] = {"other": asyncio.Event()}
    held = True

    async def send(body: bytes, deadline: float, indices: Callable[[], list[str]]) -> Any:
        script.bodies.append(body)
        if indices()[0] in gates:
            await gates[indices()[0]].wait()
        if held and "full" in indices():
            raise Unallocatable({"full": "disk_threshold: no room"})
        return {"errors": False}

    coalescer = Coalescer(send, POLICY, script)
    first = asyncio.create_task(submit(coalescer, "first", index="other"))
    await asyncio.sleep(0.01)
    stuck = asyncio.create_task(submit(coalescer, "s0", index="full"))
    fine = asyncio.create_task(submit(coalescer, "f0", index="ok"))
    await asyncio.sleep(0.01)
    gates["other"].set()

    assert await first == {"errors": False}
    with pytest.raises(Unallocatable, match=r"^disk_threshold: no room$"):
        await stuck
    with pytest.raises(HeldUp):
        await fine

    script.sent.clear()
    gates["full"] = asyncio.Event()
    held = False
    alone = asyncio.create_task(submit(coalescer, "s1", index="full"))
    await asyncio.sleep(0.01)
    assert coalescer.in_flight == 0
    assert await submit(coalescer, "f1", index="ok") == {"errors": False}
    gates["full"].set()
    assert await alone == {"errors": False}
    assert script.sent == ["alone", "idle"]


async def test_on_close_what_waits_is_sent_at_once_and_then_nothing_more() -> None:
    script = Script(statuses({}))
    coalescer = Coalescer(script.send, POLICY, script)
    script.gate = asyncio.Event()
    first = asyncio.create_task(submit(coalescer, "first"))
    await asyncio.sleep(0.01)
    waiting = asyncio.create_task(submit(coalescer, "waiting"))
    await asyncio.sleep(0.01)

    closing = asyncio.create_task(coalescer.close())
    await asyncio.sleep(0.01)
    during = asyncio.create_task(submit(coalescer, "during"))
    await asyncio.sleep(0.01)
    script.gate.set()
    await closing

    assert await first == await waiting == await during == {"errors": False}
    assert script.sent == ["idle", "shutdown", "shutdown"]
    with pytest.raises(Closed):
        await submit(coalescer, "after")


async def test_a_write_held_up_by_another_requests_index_is_stored_all_the_same() -> None:
    """The bulk is held longer than the writer's retry window: the write to the index that
    cannot be allocated gets 503 with the reason, the other is sent again and stored."""
    settings = Settings(space_tokens={}, es_retry_seconds=0.05, bulk_concurrency=1)
    gate = asyncio.Event()

    async def send(body: bytes, deadline: float, indices: Callable[[], list[str]]) -> Any:
        if "p-s-2021.01" in indices():
            await gate.wait()
        if "p-s-2021.02" in indices():
            await asyncio.sleep(0.2)  # longer than the retry window
            raise Unallocatable({"p-s-2021.02": "no room"})
        return {"errors": False}

    client = connect(settings)
    writer = Writer(settings, client, lambda error: None, send=send)
    try:
        first = asyncio.create_task(writer.write(encoded("2021-01-01T00:00:00Z")))
        await asyncio.sleep(0.01)
        stuck = asyncio.create_task(writer.write(encoded("2021-02-01T00:00:00Z")))
        innocent = asyncio.create_task(writer.write(encoded("2021-03-01T00:00:00Z")))
        await asyncio.sleep(0.01)
        gate.set()

        assert (await first).created == 1
        assert (await innocent).created == 1
        with pytest.raises(StoreUnavailable) as refused:
            await stuck
    finally:
        await client.close()
    assert refused.value.parameters["reason"] == "no room"


def encoded(timestamp: str) -> bulk.Bulk:
    return bulk.encode([make_event(timestamp=timestamp)], "s", "p")


async def test_a_large_request_goes_at_once_in_a_bulk_of_its_own_whatever_is_in_flight() -> None:
    """Half a bulk or more gains nothing from sharing: a client of big batches is served as
    if HQ did not coalesce, while small requests still wait for the bulk in flight."""
    script = Script(statuses({}))
    script.gate = asyncio.Event()
    coalescer = Coalescer(script.send, POLICY, script)
    big = [f"big{i}" for i in range(POLICY.max_events // 2)]

    first = asyncio.create_task(submit(coalescer, "first"))
    await asyncio.sleep(0.01)
    small = asyncio.create_task(submit(coalescer, "small"))
    large = asyncio.create_task(submit(coalescer, *big))
    await asyncio.sleep(0.01)
    sent_while_the_first_was_in_flight = list(script.bodies)
    script.gate.set()
    await asyncio.gather(first, small, large)

    assert sent_while_the_first_was_in_flight == [lines("first"), lines(*big)]
    assert script.bodies[2] == lines("small")
    assert script.sent == ["idle", "large", "idle"]


async def test_events_retried_after_a_shared_bulk_are_exactly_those_elasticsearch_refused() -> None:
    """In a shared bulk each write keeps its lines as a region of the bulk's body; the lines
    it sends again afterwards are still its own, byte for byte."""
    settings = Settings(space_tokens={}, bulk_concurrency=1)
    gate = asyncio.Event()
    bodies: list[bytes] = []
    refused_once: set[bytes] = set()

    async def send(body: bytes, deadline: float, indices: Callable[[], list[str]]) -> Any:
        bodies.append(body)
        if len(bodies) == 1:
            await gate.wait()
        docs = body.splitlines()[::2]  # the action lines, with each event's id
        statuses = [429 if b"retry" in d and d not in refused_once else 201 for d in docs]
        refused_once.update(d for d in docs if b"retry" in d)
        items = [{"create": {"status": s}} for s in statuses]
        return {"errors": 429 in statuses, "items": items}

    def batch(*messages: str) -> bulk.Bulk:
        events = [make_event(id=f"id-{m}", timestamp="2021-01-01T00:00:00Z") for m in messages]
        return bulk.encode(events, "s", "p")

    client = connect(settings)
    writer = Writer(settings, client, lambda error: None, send=send)
    try:
        first = asyncio.create_task(writer.write(batch("first")))
        await asyncio.sleep(0.01)
        a, b = batch("a0", "a1-retry", "a2"), batch("b0-retry", "b1")
        expected = {"a": a[1], "b": b[0]}
        writes = [asyncio.create_task(writer.write(x)) for x in (a, b)]
        await asyncio.sleep(0.01)
        gate.set()
        outcomes = await asyncio.gather(first, *writes)
    finally:
        await client.close()

    assert [o.created for o in outcomes] == [1, 3, 2]
    assert bodies[1] == batch("a0", "a1-retry", "a2").body + batch("b0-retry", "b1").body
    assert sorted(bodies[2:]) == sorted([expected["a"], expected["b"]])
