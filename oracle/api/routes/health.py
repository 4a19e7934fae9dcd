from __future__ import annotations

from fastapi import APIRouter, Response, status

from oracle.api.deps import ControlDep
from oracle.api.schemas import Health, ParkedList, ParkedModel, Ready

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready}})
def ready(control: ControlDep, response: Response) -> Ready:
    """Readiness: started, executor alive, the listener caught up, and the RPC answering."""
    s = control.status()
    ok = bool(s.started and s.executor_alive and s.caught_up and s.consecutive_errors < 3)
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Ready(ready=ok, started=s.started, caught_up=s.caught_up, paused=s.paused,
                 executor_alive=s.executor_alive, cursor_block=s.cursor_block, head_block=s.head_block,
                 consecutive_errors=s.consecutive_errors, last_error=s.last_error,
                 parked_models={m: str(p["reason"]) for m, p in s.parked_models.items()})


@router.get("/parked", response_model=ParkedList)
def parked(control: ControlDep) -> ParkedList:
    """Models this node stopped serving because their inputs kept running past their time budget."""
    return ParkedList(parked=[ParkedModel(model_id=m, **p) for m, p in control.status().parked_models.items()])
