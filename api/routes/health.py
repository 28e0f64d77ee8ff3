"""Operations: ``/livez``, ``/readyz`` (and ``/healthz``), and ``/metrics`` (Prometheus).

- ``/livez`` (liveness) answers 200 whenever this process answers HTTP at all: it
  reads nothing, so a database outage never makes an orchestrator restart servers
  that would come back by themselves. Restart a process whose ``/livez`` fails.
- ``/readyz`` (readiness) answers 200 when the database answers and this process's
  sequencer runs, else 503 (problem+json, ``unavailable``, with Retry-After), so a
  load balancer stops sending requests to a process that cannot serve them.
- ``/healthz`` is ``/readyz`` under its older name, kept for existing health checks
  (the Dockerfile's HEALTHCHECK, the demo).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.metrics import CONTENT_TYPE
from api.problems import ProblemError
from api.routes.deps import AppContext, ContextDep
from api.routes.schemas import Alive, Health, problem_responses
from api.storage.base import StorageError

router = APIRouter(tags=["operations"])


@router.get("/livez", summary="Liveness", response_model=Alive)
async def livez(response: Response) -> Alive:
    """200 while the process answers; reads nothing (not the database)."""
    response.headers["Cache-Control"] = "no-store"
    return Alive(status="ok")


def _ready(ctx: AppContext, response: Response) -> Health:
    size = ctx.storage.head().size
    if ctx.sequencer is None or not ctx.sequencer.running:
        raise ProblemError(
            "unavailable",
            "The sequencer of this process is not running.",
            status=503,
            headers={"Retry-After": "5"},
        )
    response.headers["Cache-Control"] = "no-store"
    return Health(status="ok", size=size)


@router.get(
    "/readyz",
    summary="Readiness",
    response_model=Health,
    responses=problem_responses(503),
)
def readyz(ctx: ContextDep, response: Response) -> Health:
    """200 when the database answers and the sequencer runs; else 503."""
    return _ready(ctx, response)


@router.get(
    "/healthz",
    summary="Readiness (older name of /readyz)",
    response_model=Health,
    responses=problem_responses(503),
)
def healthz(ctx: ContextDep, response: Response) -> Health:
    """The same as ``/readyz``: 200 when the database answers and the sequencer runs."""
    return _ready(ctx, response)


@router.get(
    "/metrics",
    summary="Metrics (Prometheus text format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(ctx: ContextDep) -> Response:
    """Request counts by route and status, sequenced records, batch sizes, log size."""
    try:
        size: int | None = ctx.storage.head().size
    except StorageError:
        size = None  # still export the counters
    queued = ctx.sequencer.queued if ctx.sequencer is not None else None
    body = ctx.metrics.render(log_size=size, queued=queued)
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


__all__ = ["router"]
