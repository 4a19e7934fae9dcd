"""``create_app``: the operator API factory. Extra routers (e.g. the dashboard) are passed in, not patched in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from oracle.api.ports import Control
from oracle.api.routes import admin, health, jobs, metrics, models

DEFAULT_MAX_BODY = 64 * 1024


def create_app(control: Control, extra_routers: Sequence[APIRouter] = (), max_body_bytes: int | None = None) -> FastAPI:
    app = FastAPI(title="Inference oracle operator node", version="0.1.0")
    app.state.control = control
    limit: int = max_body_bytes or getattr(control, "max_body_bytes", None) or DEFAULT_MAX_BODY

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                return JSONResponse({"detail": "bad Content-Length"}, status_code=400)
            if too_big:
                return JSONResponse({"detail": f"body over {limit} bytes"}, status_code=413)
        elif request.method in ("POST", "PUT", "PATCH"):
            # Chunked upload: count while streaming and stop at the limit, never buffering more than it.
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return JSONResponse({"detail": f"body over {limit} bytes"}, status_code=413)
                chunks.append(chunk)
            request._body = b"".join(chunks)  # replayed to the route by Starlette's cached request
        return await call_next(request)

    for r in (health.router, metrics.router, jobs.router, models.router, admin.router, *extra_routers):
        app.include_router(r)
    return app
