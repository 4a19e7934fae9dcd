from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from oracle.api.deps import ControlDep
from oracle.api.ports import JobView
from oracle.api.schemas import JobList, JobOut
from oracle.chain.types import rid_hex
from oracle.jobstate import JobState

router = APIRouter(prefix="/jobs", tags=["jobs"])


def job_out(j: JobView) -> JobOut:
    return JobOut(request_id=rid_hex(j.request_id), model_id=j.model_id, requester=j.requester, fee=str(j.fee),
                  state=j.state.value, input="0x" + j.input.hex(),
                  output="0x" + j.output.hex() if j.output is not None else None, tx_hash=j.tx_hash, nonce=j.nonce,
                  block_number=j.block_number, submit_block=j.submit_block,
                  challenge_deadline=j.challenge_deadline, attempts=j.attempts, error=j.error,
                  created_at=j.created_at, updated_at=j.updated_at)


@router.get("", response_model=JobList)
def list_jobs(control: ControlDep, state: JobState | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> JobList:
    """Jobs, newest first (or oldest first within one ``state``), with counts per state."""
    return JobList(jobs=[job_out(j) for j in control.db.jobs(state, limit, offset)], counts=control.db.counts())


@router.get("/{request_id}", response_model=JobOut, responses={404: {}})
def get_job(control: ControlDep,
            request_id: Annotated[str, Path(pattern=r"^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]) -> JobOut:
    """One job by request id (0x-hex or decimal)."""
    rid = int(request_id, 16) if request_id.startswith("0x") else int(request_id)
    if rid >= 1 << 256:
        raise HTTPException(404, "no such job")
    j = control.db.job(rid)
    if j is None:
        raise HTTPException(404, "no such job")
    return job_out(j)
