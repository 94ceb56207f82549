"""Load for the cluster tests: senders that put batches to HQ the way agents do (a refused
batch is sent again until it gets its 202), watchers that read and probe HQ meanwhile, a real
`logspace serve` whose output is drained, and the check that Elasticsearch holds every
acknowledged event exactly once."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from logspace.testing import make_event

from .processes import hq_environ, start_hq

TOKEN = "load-token"
SPACE = "load"
# Below Elasticsearch's 10,000 terms and buckets per request, with room to spare.
ID_SLICE = 5000
# How soon a sender sends a refused batch again: short, so that the refusal windows measure
# HQ, not the sender's patience (an agent would wait Retry-After).
RESEND_SECONDS = 0.25


@dataclass
class Batch:
    """One batch and every answer it got until its 202: (start, end, status or error)."""

    ids: list[str]
    answers: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return bool(self.answers) and self.answers[-1][2] == "202"

    @property
    def refusal_window(self) -> float:
        """From the start of its first refused attempt to the end of its 202; 0 if none."""
        if len(self.answers) < 2 or not self.acknowledged:
            return 0.0
        return self.answers[-1][1] - self.answers[0][0]


class Senders:
    """`count` threads, each putting batches of `size` events to HQ with `pause` seconds in
    between. Events are stamped in the month `month` (`YYYY-MM`), which a test may change."""

    def __init__(
        self, hq_url: str, *, count: int = 4, size: int = 50, pause: float = 0.05, month: str
    ) -> None:
        self.hq_url = hq_url
        self.size = size
        self.pause = pause
        self.month = month
        self.batches: list[Batch] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def __enter__(self) -> Senders:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self, patience: float = 120.0) -> None:
        """Stop after each sender's batch in hand has its 202 (or `patience` has run out)."""
        self._deadline = time.monotonic() + patience
        self._stop.set()
        for thread in self._threads:
            thread.join(patience + 30)

    def _run(self) -> None:
        headers = {"content-type": "application/json", "logspace.space-token": TOKEN}
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                stamp = f"{self.month}-15T12:00:00.000Z"
                events = [make_event(timestamp=stamp) for _ in range(self.size)]
                batch = Batch([e["id"] for e in events])
                with self._lock:
                    self.batches.append(batch)
                body = orjson.dumps(events)
                while True:
                    started = time.monotonic()
                    try:
                        response = client.put(
                            f"{self.hq_url}/events", content=body, headers=headers
                        )
                        status = str(response.status_code)
                        if response.status_code != 202:
                            status += " " + str(response.json().get("type"))
                    except httpx.TransportError as error:
                        status = f"no answer ({type(error).__name__})"
                    batch.answers.append((started, time.monotonic(), status))
                    if status == "202" or not status.startswith("503 "):
                        break  # stored, or an answer an agent would not simply send again
                    if self._stop.is_set() and time.monotonic() > self._deadline:
                        break
                    time.sleep(RESEND_SECONDS)
                time.sleep(self.pause)

    # -- what happened ---------------------------------------------------------------------

    def statuses(self) -> Counter[str]:
        return Counter(status for batch in self.batches for _, _, status in batch.answers)

    def acknowledged(self) -> list[str]:
        return [i for batch in self.batches if batch.acknowledged for i in batch.ids]

    def sent(self) -> list[str]:
        return [i for batch in self.batches for i in batch.ids]

    def longest_refusal(self) -> float:
        return max((batch.refusal_window for batch in self.batches), default=0.0)

    def slowest_202(self) -> float:
        return max(
            (end - start for b in self.batches for start, end, s in b.answers if s == "202"),
            default=0.0,
        )


class Watchers:
    """Threads that search HQ's read API and probe its readiness every `interval` seconds,
    noting the statuses."""

    def __init__(self, hq_url: str, interval: float = 0.25) -> None:
        self.hq_url = hq_url
        self.interval = interval
        self.reads: Counter[str] = Counter()
        self.ready: Counter[str] = Counter()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, args=(path, counter), daemon=True)
            for path, counter in (
                ("/events?type=test/event", self.reads),
                ("/health/ready", self.ready),
            )
        ]

    def __enter__(self) -> Watchers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _watch(self, path: str, counter: Counter[str]) -> None:
        headers = {"logspace.space-token": TOKEN}
        with httpx.Client(timeout=60) as client:
            while not self._stop.wait(self.interval):
                try:
                    response = client.get(f"{self.hq_url}{path}", headers=headers)
                    status = str(response.status_code)
                    if response.status_code != 200:
                        status += " " + str(response.json().get("type"))
                except httpx.TransportError as error:
                    status = f"no answer ({type(error).__name__})"
                counter[status] += 1


# -- HQ as a process ---------------------------------------------------------------------------


@dataclass
class HQProcess:
    url: str
    process: subprocess.Popen[str]
    output: list[str]


@contextlib.contextmanager
def serving(es_urls: Sequence[str], prefix: str, **variables: str) -> Iterator[HQProcess]:
    """`logspace serve` on the given nodes under `prefix`, ready; its output is read all the
    while (an unread pipe would stop it once full), and it is killed afterwards."""
    env = hq_environ(
        LOGSPACE_ES_URL=",".join(es_urls),
        LOGSPACE_SPACE_TOKENS=f"{SPACE}:{TOKEN}",
        LOGSPACE_INDEX_PREFIX=prefix,
        LOGSPACE_CONTROL_INDEX=f"{prefix}.control",
        **variables,
    )
    url, process = start_hq(env, ready_path="/health/ready", timeout=180)
    output: list[str] = []

    def drain() -> None:
        assert process.stdout is not None
        output.extend(process.stdout)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield HQProcess(url, process, output)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        reader.join(10)


def new_prefix() -> str:
    return f"lstest-{uuid.uuid4().hex[:10]}"


def remove_prefix(es_url: str, prefix: str) -> None:
    """The indices and templates of `prefix`, as the `prefix` fixture removes them."""
    with httpx.Client(base_url=es_url, timeout=120) as es:
        es.delete(f"/{prefix}-*", params={"expand_wildcards": "all"})
        es.delete(f"/_index_template/{prefix}")
        es.delete(f"/_component_template/{prefix}-*")
        es.delete(f"/{prefix}.control", params={"ignore_unavailable": "true"})


# -- what Elasticsearch holds ------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """How often each of a list of ids is stored: those missing, those stored more than once,
    and the documents under the prefix in all."""

    missing: list[str]
    repeated: dict[str, int]
    documents: int


def count_by_id(es_url: str, prefix: str, ids: Sequence[str]) -> Tally:
    """Count the documents of each id, in slices of `ID_SLICE` ids (a terms query and a terms
    aggregation of that many: below the 10,000 that a search returns or counts at most)."""
    missing: list[str] = []
    repeated: dict[str, int] = {}
    with httpx.Client(base_url=es_url, timeout=120) as es:
        es.post(f"/{prefix}-*/_refresh").raise_for_status()
        for start in range(0, len(ids), ID_SLICE):
            chunk = list(ids[start : start + ID_SLICE])
            body: dict[str, Any] = {
                "size": 0,
                "query": {"terms": {"id": chunk}},
                "aggs": {"ids": {"terms": {"field": "id", "size": len(chunk)}}},
            }
            answer = es.post(f"/{prefix}-*/_search", json=body)
            answer.raise_for_status()
            counts = {
                b["key"]: b["doc_count"] for b in answer.json()["aggregations"]["ids"]["buckets"]
            }
            missing.extend(i for i in chunk if i not in counts)
            repeated.update({i: n for i, n in counts.items() if n > 1})
        total = es.get(f"/{prefix}-*/_count").json()["count"]
    return Tally(missing, repeated, int(total))
