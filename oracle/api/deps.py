"""Dependencies shared by the routers: the node control port (:mod:`oracle.api.ports`) and the admin key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from oracle.api.ports import Control


def get_control(request: Request) -> Control:
    return request.app.state.control  # type: ignore[no-any-return]


ControlDep = Annotated[Control, Depends(get_control)]


def require_admin(control: ControlDep, x_api_key: Annotated[str | None, Header()] = None) -> None:
    """401 without a key, 403 with a wrong one (or when the node has no admin key configured)."""
    if not x_api_key:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-API-Key header",
                            headers={"WWW-Authenticate": "ApiKey"})
    expected = control.admin_key
    if expected is None or not hmac.compare_digest(x_api_key.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid API key")


AdminDep = Annotated[None, Depends(require_admin)]
