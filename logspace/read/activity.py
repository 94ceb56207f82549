"""Agent activity: per agent (a system and an agent id), its event count and a histogram over
the last `duration` seconds, sorted and paged.

Only agents with events in the window are listed. All of them are counted first (a
`composite` aggregation, page by page), so the sort and the total are over every agent;
then the histograms are fetched for the agents of the requested page only. Building the
requests and reading the answers is pure; `gather` does the rounds with the functions the
route hands it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from logspace.errors import InvalidParameter
from logspace.read.params import FIRST_MILLIS, Params, format_instant
from logspace.read.timeseries import bucket_position, date_histogram

__all__ = ["SORTS", "Activity", "Agent", "gather", "read_activity"]

DEFAULT_DURATION: Final = 900
MIN_DURATION: Final = 60
MAX_DURATION: Final = 30 * 86_400
DEFAULT_STEPS: Final = 50
MAX_STEPS: Final = 1000
DEFAULT_SIZE: Final = 25
MAX_SIZE: Final = 1000
MAX_OFFSET: Final = 2**31 - 1
SORTS: Final = (
    "count:desc",
    "count:asc",
    "system:asc",
    "system:desc",
    "agent-id:asc",
    "agent-id:desc",
)
DEFAULT_SORT: Final = SORTS[0]
# Agents counted per composite page, and at most in all (beyond, `complete` is false).
AGENTS_PER_PAGE: Final = 1000
MAX_AGENTS: Final = 50_000
# Histogram buckets per search, well below Elasticsearch's `search.max_buckets`.
BUCKETS_PER_SEARCH: Final = 10_000

Search = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MultiSearch = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class Activity:
    start: int
    end: int
    gap_millis: int
    steps: int
    sort: str
    offset: int
    size: int


@dataclass(frozen=True)
class Agent:
    system: str
    agent_id: str
    event_count: int


def read_activity(params: Params, now: int) -> Activity:
    """`duration`, `steps`, `end` (default `now`, epoch ms), `sort`, `offset` and `size`."""
    duration = params.integer(
        "duration", default=DEFAULT_DURATION, minimum=MIN_DURATION, maximum=MAX_DURATION
    )
    steps = params.integer("steps", default=DEFAULT_STEPS, minimum=1, maximum=MAX_STEPS)
    end = params.instant("end")
    sort = params.choice("sort", SORTS, default=DEFAULT_SORT)
    offset = params.integer("offset", default=0, minimum=0, maximum=MAX_OFFSET)
    size = params.integer("size", default=DEFAULT_SIZE, minimum=1, maximum=MAX_SIZE)
    params.finish()
    if steps > duration:
        raise InvalidParameter(
            params.name("steps"), f"at most one step per second: at most {duration} here"
        )
    end = now if end is None else end
    gap = -(-duration * 1000 // steps)
    if end - steps * gap < FIRST_MILLIS:
        raise InvalidParameter(params.name("end"), "the window would start before the year 1")
    return Activity(end - steps * gap, end, gap, steps, sort, offset, size)


def _window(activity: Activity) -> dict[str, Any]:
    return {
        "range": {
            "timestamp": {"gte": activity.start, "lt": activity.end, "format": "epoch_millis"}
        }
    }


def counts_body(activity: Activity, after: dict[str, Any] | None) -> dict[str, Any]:
    composite: dict[str, Any] = {
        "size": AGENTS_PER_PAGE,
        "sources": [
            {"system": {"terms": {"field": "system"}}},
            {"agent-id": {"terms": {"field": "agent-id"}}},
        ],
    }
    if after is not None:
        composite["after"] = after
    return {
        "size": 0,
        "track_total_hits": False,
        "query": _window(activity),
        "aggs": {"agents": {"composite": composite}},
    }


def read_counts(response: dict[str, Any]) -> tuple[list[Agent], dict[str, Any] | None]:
    """The agents of one composite page, and the key to ask for the next (None at the end)."""
    # A space without indices yet answers without aggregations.
    result = response.get("aggregations", {}).get("agents", {"buckets": []})
    agents = [
        Agent(b["key"]["system"], b["key"]["agent-id"], b["doc_count"]) for b in result["buckets"]
    ]
    after = result.get("after_key") if len(agents) == AGENTS_PER_PAGE else None
    return agents, after


def ordered(agents: Sequence[Agent], sort: str) -> list[Agent]:
    """By the sort's field either way; ties always by system, then agent id, ascending."""
    field, _, direction = sort.partition(":")
    keys: dict[str, Callable[[Agent], Any]] = {
        "count": lambda a: a.event_count,
        "system": lambda a: a.system,
        "agent-id": lambda a: a.agent_id,
    }
    # Sorting is stable, `reverse` included: the second sort keeps the first's order of ties.
    by_name = sorted(agents, key=lambda a: (a.system, a.agent_id))
    return sorted(by_name, key=keys[field], reverse=direction == "desc")


def history_bodies(activity: Activity, agents: Sequence[Agent]) -> list[dict[str, Any]]:
    """Histograms of `agents`, as few to a search as keep its buckets bounded."""
    per_search = max(1, BUCKETS_PER_SEARCH // (activity.steps + 1))
    bodies = []
    for first in range(0, len(agents), per_search):
        filters = [
            {
                "bool": {
                    "filter": [
                        {"term": {"system": agent.system}},
                        {"term": {"agent-id": agent.agent_id}},
                    ]
                }
            }
            for agent in agents[first : first + per_search]
        ]
        bodies.append(
            {
                "size": 0,
                "track_total_hits": False,
                "query": _window(activity),
                "aggs": {
                    "agents": {
                        "filters": {"filters": filters},
                        "aggs": {
                            "history": date_histogram(
                                activity.start, activity.end, activity.gap_millis
                            )
                        },
                    }
                },
            }
        )
    return bodies


def read_histories(activity: Activity, responses: list[dict[str, Any]]) -> list[list[int]]:
    histories = []
    for response in responses:
        for agent_bucket in response["aggregations"]["agents"]["buckets"]:
            history = [0] * activity.steps
            for bucket in agent_bucket["history"]["buckets"]:
                position = bucket_position(
                    bucket["key"], activity.start, activity.gap_millis, activity.steps
                )
                if position is not None:
                    history[position] = bucket["doc_count"]
            histories.append(history)
    return histories


async def gather(activity: Activity, search: Search, msearch: MultiSearch) -> dict[str, Any]:
    """The activity answer: counts every agent, then the page's histograms."""
    agents: list[Agent] = []
    after: dict[str, Any] | None = None
    while True:
        found, after = read_counts(await search(counts_body(activity, after)))
        agents.extend(found)
        if after is None or len(agents) >= MAX_AGENTS:
            break
    page = ordered(agents, activity.sort)[activity.offset : activity.offset + activity.size]
    histories = read_histories(activity, await msearch(history_bodies(activity, page)))
    return {
        "start": format_instant(activity.start),
        "end": format_instant(activity.end),
        "gap": activity.gap_millis / 1000,
        "steps": activity.steps,
        "sort": activity.sort,
        "offset": activity.offset,
        "total": len(agents),
        "complete": after is None,
        "max-history-value": max((max(h) for h in histories), default=0),
        "agents": [
            {
                "system": agent.system,
                "agent-id": agent.agent_id,
                "event-count": agent.event_count,
                "history": history,
            }
            for agent, history in zip(page, histories, strict=True)
        ],
    }
