"""Dependencies shared by the routers: the node control facade and the admin key check."""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Protocol

from fastapi import Depends, Header, HTTPException, Request, status

from oracle.runtime.model_store import ModelStore
from oracle.worker.db import Database
from oracle.worker.metrics import Metrics


class Control(Protocol):
    """What the API needs from a node (``oracle.worker.node.NodeControl`` implements it)."""

    @property
    def db(self) -> Database: ...

    @property
    def store(self) -> ModelStore: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def admin_key(self) -> str | None: ...

    def status(self) -> Any: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def withdraw(self, to: str | None) -> dict[str, Any]: ...

    def unpark(self, model_id: int) -> bool: ...


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
