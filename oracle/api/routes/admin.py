from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from oracle.api.deps import AdminDep, ControlDep
from oracle.api.schemas import Ack, UnparkOut, WithdrawIn, WithdrawOut

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/pause", response_model=Ack, responses={401: {}, 403: {}})
def pause(control: ControlDep, _auth: AdminDep) -> Ack:
    """Stop executing and submitting new results (finalization of own results continues)."""
    control.pause()
    return Ack(ok=True, paused=True)


@router.post("/resume", response_model=Ack, responses={401: {}, 403: {}})
def resume(control: ControlDep, _auth: AdminDep) -> Ack:
    control.resume()
    return Ack(ok=True, paused=False)


@router.post("/withdraw", response_model=WithdrawOut, responses={401: {}, 403: {}, 409: {}})
def withdraw(control: ControlDep, _auth: AdminDep, body: WithdrawIn | None = None) -> WithdrawOut:
    """Withdraw the operator's credits (sent by the node's own nonce owner)."""
    try:
        out = control.withdraw(body.to if body else None)
    except (RuntimeError, TimeoutError) as exc:
        raise HTTPException(409, str(exc)) from exc
    return WithdrawOut(sent=bool(out["sent"]), credits=str(out["credits"]), tx_hash=out["tx_hash"])


@router.post("/unpark/{model_id}", response_model=UnparkOut, responses={401: {}, 403: {}, 404: {}})
def unpark(control: ControlDep, _auth: AdminDep, model_id: Annotated[int, Path(ge=0)]) -> UnparkOut:
    """Serve a parked model again (raise its budget in model_timeouts first if it is just slow)."""
    if not control.unpark(model_id):
        raise HTTPException(404, f"model {model_id} is not parked")
    return UnparkOut(model_id=model_id, unparked=True)
