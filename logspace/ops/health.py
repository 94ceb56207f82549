"""Health: is HQ alive, and is it ready to take events?

Liveness asks nothing of Elasticsearch: HQ answers, so the process is fine, and restarting it
would not help while Elasticsearch is down. Readiness asks Elasticsearch: HQ is ready when it
answers and every index template is installed (at HQ's version or a newer one), so a load
balancer sends events only to HQs that can store them. A ready answer may carry `warnings`
(the cluster nearing its shard limit, from the shard watch) that do not stop HQ from storing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from logspace.errors import NotReady

__all__ = ["get_live", "get_ready"]


async def get_live(request: Request) -> Response:
    return JSONResponse({"status": "live"})


async def get_ready(request: Request) -> Response:
    hq = request.app.state.hq
    problems: dict[str, str] = await hq.store.readiness()
    if "elasticsearch" in problems:
        hq.metrics.es_errors.labels("readiness", "unavailable").inc()
    if problems:
        raise NotReady(
            "HQ cannot store events now: " + "; ".join(problems.values()) + ".", problems
        )
    # Still ready: HQ stores events; an operator should act before new indices fail.
    if hq.shards is not None and hq.shards.warning:
        return JSONResponse({"status": "ready", "warnings": {"shards": hq.shards.warning}})
    return JSONResponse({"status": "ready"})
