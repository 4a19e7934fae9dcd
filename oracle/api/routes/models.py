from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from oracle.api.deps import ControlDep

router = APIRouter(prefix="/models", tags=["models"])


@router.get("/{onnx_hash}", response_class=Response, response_model=None,
            responses={200: {"content": {"application/octet-stream": {}}}, 404: {}})
def get_model(control: ControlDep,
              onnx_hash: Annotated[str, Path(pattern=r"^(0x)?[0-9a-fA-F]{64}$")]) -> Response:
    """A cached model file by its keccak256; re-verified before it is served, so callers can trust-but-verify."""
    digest = bytes.fromhex(onnx_hash.removeprefix("0x"))
    data = control.store.read_cached(digest)
    if data is None:
        raise HTTPException(404, "model not cached on this node")
    return Response(data, media_type="application/octet-stream",
                    headers={"X-Keccak256": "0x" + digest.hex(),
                             "Cache-Control": "public, max-age=31536000, immutable"})
