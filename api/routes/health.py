"""Operations: ``/healthz`` (liveness and readiness) and ``/metrics`` (Prometheus).

``/healthz`` answers 200 when the database answers and this process's sequencer
runs, else 503 (problem+json, ``unavailable``), so a load balancer stops sending
writes to a process that cannot sequence them.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.metrics import CONTENT_TYPE
from api.problems import ProblemError
from api.routes.deps import ContextDep
from api.routes.schemas import Health, problem_responses
from api.storage.base import StorageError

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Health",
    response_model=Health,
    responses=problem_responses(503),
)
def healthz(ctx: ContextDep, response: Response) -> Health:
    """200 when the database answers and the sequencer runs."""
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
