from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from oracle.api.deps import ControlDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, response_model=None,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(control: ControlDep) -> Response:
    """Prometheus exposition of the node's metrics."""
    return Response(control.metrics.render(), media_type=CONTENT_TYPE_LATEST)
