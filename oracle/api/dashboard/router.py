"""The dashboard router: JSON read model, the try-it endpoint and the static pages (no build step, no CDN).

Routes:

- ``GET /dashboard``, ``GET /try``: the two pages; ``GET /dashboard/static/{name}``: their CSS and JS.
- ``GET /api/dashboard/state``: requests, operators, disputes, models, chain time (cached index, see
  :mod:`oracle.api.dashboard.indexer`); ``GET /api/dashboard/requests/{id}``: one request.
- ``GET /api/try/config`` and ``POST /api/try``: the try-it page's backend; POST answers 404 unless the
  router was built with ``try_signer`` and ``try_model_id``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Query, Response
from web3.contract import Contract

from oracle.api.dashboard.indexer import ChainUnavailable, DashboardIndexer
from oracle.api.dashboard.records import RequestRecord, Snapshot
from oracle.api.dashboard.schemas import (
    ChainOut,
    DashboardState,
    DisputeOut,
    FeeAsset,
    GameOut,
    ModelOut,
    OperatorOut,
    ParametersOut,
    RequestOut,
    TotalsOut,
    TryConfig,
    TryIn,
    TryOut,
)
from oracle.api.dashboard.tryit import TryError, TryService
from oracle.chain.client import OracleClient
from oracle.chain.tx import Signer
from oracle.chain.types import Mode, rid_hex
from oracle.dispute.party import game_address, game_contract
from oracle.dispute.status import open_games
from oracle.errors import ConfigError
from oracle.lifecycle import is_attested, stage

TRY_DISABLED = (
    "try-it is disabled on this node: the dashboard was started without try_signer and "
    "try_model_id (see oracle.api.dashboard.dashboard_router)"
)

#: Pages may only load their own files and talk to their own origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_MEDIA = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}

RequestIdPath = Annotated[
    str, Path(pattern=r"^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$", description="Request id, 0x-hex or decimal")
]


@dataclass(frozen=True)
class _File:
    body: bytes
    media_type: str
    etag: str


def _load_static() -> dict[str, _File]:
    root = resources.files("oracle.api.dashboard").joinpath("static")
    files: dict[str, _File] = {}
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _MEDIA:
            body = entry.read_bytes()
            files[entry.name] = _File(body, _MEDIA[suffix], '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
    return files


def _hex(b: bytes | None) -> str | None:
    return None if b is None else "0x" + b.hex()


def _fee_asset(snap: Snapshot, model_id: int) -> dict[str, Any]:
    """The ``FeeAsset`` fields of a request or model of ``model_id``."""
    token, symbol, decimals = snap.fee_asset(model_id)
    return FeeAsset(fee_token=token, fee_symbol=symbol, fee_decimals=decimals).model_dump()


def request_out(snap: Snapshot, r: RequestRecord) -> RequestOut:
    status = snap.status_of(r)
    window = snap.params.challenge_window
    deadline = r.submitted_at + window if r.submitted_at is not None else None
    open_ = is_attested(status)
    final_output = r.correct_output if r.fraud else (r.output if r.finalized else None)
    return RequestOut(
        id=rid_hex(r.request_id),
        model_id=r.model_id,
        requester=r.requester,
        fee=str(r.fee),
        **_fee_asset(snap, r.model_id),
        callback_gas_limit=r.callback_gas_limit,
        input="0x" + r.input.hex(),
        status=status.name,  # type: ignore[arg-type]
        as_of=snap.chain_time,
        stage=stage(status),
        requested_at=r.requested_at,
        requested_block=r.requested_block,
        request_tx=r.request_tx,
        expires_at=r.requested_at + snap.params.request_timeout,
        operator=r.operator,
        output=_hex(r.output),
        submitted_at=r.submitted_at,
        submit_tx=r.submit_tx,
        challenge_deadline=deadline,
        seconds_left=max(0, deadline - snap.chain_time) if open_ and deadline is not None else None,
        finalized=r.finalized,
        fraud=r.fraud,
        refunded=r.refunded,
        correct_output=_hex(r.correct_output),
        final_output=_hex(final_output),
        challenger=r.challenger,
        callback_succeeded=r.callback_succeeded,
        settled_at=r.settled_at,
        settle_tx=r.settle_tx,
    )


def state_out(snap: Snapshot, limit: int) -> DashboardState:
    by_status: dict[str, int] = {}
    for r in snap.requests:
        name = snap.status_of(r).name
        by_status[name] = by_status.get(name, 0) + 1
    p = snap.params
    return DashboardState(
        chain=ChainOut(
            chain_id=snap.chain_id,
            oracle=snap.oracle,
            start_block=snap.start_block,
            block=snap.block,
            chain_time=snap.chain_time,
            indexed_at=snap.indexed_at,
            stale=snap.error is not None,
            error=snap.error,
        ),
        parameters=ParametersOut(
            challenge_window=p.challenge_window,
            request_timeout=p.request_timeout,
            unbonding_period=p.unbonding_period,
            min_bond_ratio=p.min_bond_ratio,
            max_callback_gas=p.max_callback_gas,
        ),
        totals=TotalsOut(
            requests=snap.requests_seen,
            by_status=by_status,
            frauds_proven=len(snap.disputes),
            slashed=str(sum(d.slashed for d in snap.disputes)),
            rewarded=str(sum(d.reward for d in snap.disputes)),
            burned=str(sum(d.burned for d in snap.disputes)),
        ),
        requests=[request_out(snap, r) for r in reversed(snap.requests[-limit:])],
        operators=[
            OperatorOut(
                address=o.address,
                staked=str(o.staked),
                locked=str(o.locked),
                free=str(o.staked - o.locked),
                pending=str(o.pending),
                withdrawable_at=o.withdrawable_at,
                credits=str(o.credits),
                results_submitted=o.results_submitted,
                results_finalized=o.results_finalized,
                fees_earned=str(o.fees_earned),
                slashes=o.slashes,
                slashed=str(o.slashed),
            )
            for o in snap.operators
        ],
        disputes=[
            DisputeOut(
                request_id=rid_hex(d.request_id),
                model_id=d.model_id,
                operator=d.operator,
                challenger=d.challenger,
                claimed_output=_hex(d.claimed_output),
                correct_output="0x" + d.correct_output.hex(),
                reward=str(d.reward),
                burned=str(d.burned),
                slashed=str(d.slashed),
                callback_succeeded=d.callback_succeeded,
                block=d.block,
                time=d.time,
                tx=d.tx,
            )
            for d in reversed(snap.disputes)
        ],
        models=[
            ModelOut(
                id=m.model_id,
                owner=m.owner,
                mode=m.mode.name,  # type: ignore[arg-type]
                fee=str(m.fee),
                **_fee_asset(snap, m.model_id),
                bond=str(m.bond),
                input_length=m.input_length,
                output_length=m.output_length,
                onnx_hash="0x" + m.onnx_hash.hex(),
                program_commitment="0x" + m.program_commitment.hex() if m.mode is Mode.EXACT else None,
                uri=m.uri,
                retired=m.retired,
                registered_block=m.registered_block,
                requests=m.requests,
            )
            for m in snap.models
        ],
    )


def dashboard_router(
    client: OracleClient,
    *,
    start_block: int = 0,
    try_signer: Signer | None = None,
    try_model_id: int | None = None,
    confirmations: int = 0,
    refresh_interval: float = 0.5,
    try_per_minute: int = 60,
) -> APIRouter:
    """Builds the dashboard's router for one oracle deployment (pass it to ``create_app(extra_routers=...)``).

    ``start_block``: first block to index (the deployment block). ``try_signer`` + ``try_model_id``: enable
    ``POST /api/try``, which sends requests for visitors paid by ``try_signer`` (a devnet or demo account of
    its own, never the operator's key). ``refresh_interval``: the index is re-read at most this often.
    """
    if (try_signer is None) != (try_model_id is None):
        raise ConfigError(
            "try-it needs both try_signer and try_model_id (the account paying for visitors' requests and "
            "the digits model id); pass both, or neither to serve the dashboard read-only"
        )
    indexer = DashboardIndexer(
        client, start_block=start_block, confirmations=confirmations, min_interval=refresh_interval
    )
    tryer = (
        TryService(client, try_signer, try_model_id, per_minute=try_per_minute)
        if try_signer is not None and try_model_id is not None
        else None
    )
    files = _load_static()
    router = APIRouter(tags=["dashboard"])

    def snapshot() -> Snapshot:
        try:
            return indexer.snapshot()
        except ChainUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc

    def serve(name: str, if_none_match: str | None) -> Response:
        f = files.get(name)
        if f is None:
            raise HTTPException(404, f"no dashboard file {name!r}")
        headers = {"ETag": f.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        if f.media_type.startswith("text/html"):
            headers["Content-Security-Policy"] = CSP
        if if_none_match == f.etag:
            return Response(status_code=304, headers=headers)
        return Response(f.body, media_type=f.media_type, headers=headers)

    @router.get(
        "/dashboard",
        response_class=Response,
        response_model=None,
        responses={200: {"content": {"text/html": {}}}},
    )
    def dashboard_page(if_none_match: Annotated[str | None, Header()] = None) -> Response:
        """The live dashboard: requests with their challenge-window countdown, operators, disputes, models."""
        return serve("dashboard.html", if_none_match)

    @router.get(
        "/try", response_class=Response, response_model=None, responses={200: {"content": {"text/html": {}}}}
    )
    def try_page(if_none_match: Annotated[str | None, Header()] = None) -> Response:
        """Draw a digit on an 8x8 grid, submit it, watch it go requested -> attested -> finalized."""
        return serve("try.html", if_none_match)

    @router.get(
        "/dashboard/static/{name}",
        response_class=Response,
        response_model=None,
        responses={200: {"content": {"text/css": {}, "text/javascript": {}}}, 404: {}},
    )
    def static_file(
        name: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]*\.(css|js)$")],
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        """The pages' stylesheet and scripts (shipped in the package, served as-is)."""
        return serve(name, if_none_match)

    @router.get("/api/dashboard/state", response_model=DashboardState, responses={503: {}})
    def state(limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> DashboardState:
        """Everything the dashboard shows; re-read from the chain at most every ``refresh_interval`` s."""
        return state_out(snapshot(), limit)

    @router.get(
        "/api/dashboard/requests/{request_id}", response_model=RequestOut, responses={404: {}, 503: {}}
    )
    def get_request(request_id: RequestIdPath) -> RequestOut:
        """One request by id (0x-hex or decimal), with its derived status and stage."""
        rid = int(request_id, 16) if request_id.startswith("0x") else int(request_id)
        snap = snapshot()
        r = snap.requests_by_id.get(rid)
        if r is None:
            raise HTTPException(
                404,
                f"no request {rid_hex(rid) if rid < 1 << 256 else request_id} indexed "
                f"(up to block {snap.block}); a new one shows within a second",
            )
        return request_out(snap, r)

    game: list[Contract | None] = []  # resolved at the first call (the chain may be down at start)

    @router.get("/api/dashboard/games", response_model=list[GameOut], responses={503: {}})
    def games(limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[GameOut]:
        """The newest dispute games, open ones first: phase, interval, clocks and who must act."""
        try:
            if not game:
                address = game_address(client)
                game.append(None if address is None else game_contract(client.w3, address))
            if game[0] is None:
                return []
            return [GameOut.model_validate(g) for g in open_games(game[0], limit)]
        except Exception as exc:  # noqa: BLE001 - an RPC fault: say so, never a traceback
            raise HTTPException(503, f"cannot read the dispute games: {str(exc)[:200]}") from None

    @router.get("/api/try/config", response_model=TryConfig, responses={503: {}})
    def try_config() -> TryConfig:
        """Whether try-it is enabled here, and with which model and fee."""
        if tryer is None:
            return TryConfig(enabled=False, model_id=None, fee=None, requester=None, reason=TRY_DISABLED)
        try:
            model = tryer.model()
        except TryError as exc:
            return TryConfig(
                enabled=False, model_id=tryer.model_id, fee=None, requester=tryer.requester, reason=str(exc)
            )
        return TryConfig(
            enabled=not model.retired,
            model_id=model.model_id,
            fee=str(model.fee),
            requester=tryer.requester,
            reason="the model is retired" if model.retired else None,
        )

    if tryer is None:

        @router.post("/api/try", response_model=TryOut, responses={404: {"description": TRY_DISABLED}})
        def try_disabled() -> TryOut:
            """Disabled: this dashboard has no try_signer / try_model_id."""
            raise HTTPException(404, TRY_DISABLED)
    else:
        service = tryer

        @router.post("/api/try", response_model=TryOut, responses={409: {}, 422: {}, 429: {}, 503: {}})
        def try_it(body: TryIn) -> TryOut:
            """Requests an inference of the try-it model on 64 pixels (0..16), paid by the try-it signer."""
            try:
                sent = service.send(bytes(body.pixels))
            except TryError as exc:
                headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
                raise HTTPException(exc.status, str(exc), headers=headers) from exc
            try:
                indexer.snapshot(force=True)  # so the page's first poll already finds the request
            except ChainUnavailable:
                pass
            return TryOut(
                request_id=rid_hex(sent.request_id),
                model_id=sent.model.model_id,
                fee=str(sent.model.fee),
                requester=sent.requester,
                tx_hash=sent.tx_hash,
                block=sent.block,
            )

    return router
