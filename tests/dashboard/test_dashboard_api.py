"""The dashboard's JSON API against the real chain: lifecycle, fraud, refunds, caching, reorgs, try-it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from web3 import Web3

from oracle.api.dashboard import DashboardIndexer, dashboard_router
from oracle.api.dashboard import indexer as indexer_module
from oracle.chain import artifacts, erc20
from oracle.chain.client import OracleClient
from oracle.chain.types import Status
from oracle.errors import ConfigError

from .conftest import BOND, DIGITS, FEE, STAKE, TIMEOUT, WINDOW, DashEnv, sample_output, sample_pixels, token_model


def rid_hex(rid: int) -> str:
    return f"0x{rid:064x}"


def request_json(tc: TestClient, rid: int) -> dict[str, Any]:
    r = tc.get(f"/api/dashboard/requests/{rid_hex(rid)}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def operator_json(state: dict[str, Any], address: str) -> dict[str, Any]:
    [op] = [o for o in state["operators"] if o["address"] == Web3.to_checksum_address(address)]
    return op  # type: ignore[no-any-return]


def assert_matches_chain(env: DashEnv, tc: TestClient) -> None:
    """The derived status of every indexed request is what statusOf returns at the same block."""
    state = tc.get("/api/dashboard/state").json()
    block = state["chain"]["block"]
    for r in state["requests"]:
        assert r["status"] == env.client.status_of(int(r["id"], 16), block).name, r


# ---------------------------------------------------------------------------- lifecycle


def test_state_follows_a_request_from_requested_to_finalized(env: DashEnv) -> None:
    tc = env.app()
    pixels, out = sample_pixels(0), sample_output(0)
    state = tc.get("/api/dashboard/state").json()
    assert state["requests"] == [] and state["disputes"] == []
    assert state["parameters"]["challenge_window"] == WINDOW
    assert operator_json(state, env.operator)["staked"] == str(STAKE)

    rid, _ = env.client.request(env.user, env.exact_id, pixels)
    r = request_json(tc, rid)
    assert (r["status"], r["stage"], r["operator"], r["seconds_left"]) == ("PENDING", "requested", None, None)
    assert r["input"] == "0x" + pixels.hex() and r["fee"] == str(FEE) and r["model_id"] == env.exact_id
    assert r["requester"] == env.user and r["expires_at"] == r["requested_at"] + TIMEOUT

    env.client.submit(env.operator, rid, out)
    r = request_json(tc, rid)
    assert (r["status"], r["stage"], r["output"], r["operator"]) == (
        "SUBMITTED",
        "attested",
        "0x" + out.hex(),
        env.operator,
    )
    assert r["challenge_deadline"] == r["submitted_at"] + WINDOW
    assert r["seconds_left"] == WINDOW and r["as_of"] == r["submitted_at"]
    assert r["final_output"] is None
    state = tc.get("/api/dashboard/state").json()
    assert operator_json(state, env.operator)["locked"] == str(BOND)
    assert state["totals"]["by_status"] == {"SUBMITTED": 1}
    assert_matches_chain(env, tc)

    env.advance(WINDOW - 10)
    assert 0 < request_json(tc, rid)["seconds_left"] <= 10
    env.advance(10)
    r = request_json(tc, rid)
    assert (r["status"], r["stage"], r["seconds_left"]) == ("FINALIZABLE", "attested", 0)
    assert_matches_chain(env, tc)

    receipt = env.client.finalize(env.user, rid, out)
    r = request_json(tc, rid)
    assert (r["status"], r["stage"], r["finalized"], r["fraud"]) == ("FINALIZED", "finalized", True, False)
    assert r["final_output"] == "0x" + out.hex() and r["seconds_left"] is None
    assert r["settle_tx"] == "0x" + bytes(receipt["transactionHash"]).hex()
    op = operator_json(tc.get("/api/dashboard/state").json(), env.operator)
    assert (op["locked"], op["credits"], op["fees_earned"]) == ("0", str(FEE), str(FEE))
    assert (op["results_submitted"], op["results_finalized"], op["slashes"]) == (1, 1, 0)
    assert_matches_chain(env, tc)


def test_state_reports_a_proven_fraud_with_claimed_and_correct_outputs(env: DashEnv) -> None:
    tc = env.app()
    pixels, right = sample_pixels(1), sample_output(1)
    wrong = bytes([(right[0] + 1) % 10])
    honest, _ = env.client.request(env.user, env.exact_id, sample_pixels(0))
    env.client.submit(env.operator, honest, sample_output(0))
    rid, _ = env.client.request(env.user, env.exact_id, pixels)
    env.client.submit(env.operator, rid, wrong)
    assert request_json(tc, rid)["status"] == "SUBMITTED"

    receipt = env.client.challenge(env.challenger, rid, pixels)  # re-executes the digits program on-chain
    r = request_json(tc, rid)
    assert (r["status"], r["stage"], r["fraud"]) == ("FRAUD_PROVEN", "fraud_proven", True)
    assert (r["output"], r["correct_output"], r["final_output"]) == (
        "0x" + wrong.hex(),
        "0x" + right.hex(),
        "0x" + right.hex(),
    )
    assert r["challenger"] == env.challenger and r["seconds_left"] is None

    state = tc.get("/api/dashboard/state").json()
    [d] = state["disputes"]
    assert d["request_id"] == rid_hex(rid) and d["model_id"] == env.exact_id
    assert (d["operator"], d["challenger"]) == (env.operator, env.challenger)
    assert (d["claimed_output"], d["correct_output"]) == ("0x" + wrong.hex(), "0x" + right.hex())
    assert int(d["reward"]) == env.client.credits_of(env.challenger) == BOND // 2 + FEE
    assert int(d["burned"]) == BOND - BOND // 2 and int(d["slashed"]) == BOND
    assert d["tx"] == "0x" + bytes(receipt["transactionHash"]).hex()
    op = operator_json(state, env.operator)
    assert (op["slashes"], op["slashed"], op["staked"]) == (1, str(BOND), str(STAKE - BOND))
    assert op["locked"] == str(BOND)  # the honest result's bond is still locked
    t = state["totals"]
    assert (t["frauds_proven"], t["slashed"], t["burned"]) == (1, str(BOND), str(BOND - BOND // 2))
    assert t["by_status"] == {"SUBMITTED": 1, "FRAUD_PROVEN": 1}
    assert [x["id"] for x in state["requests"]] == [rid_hex(rid), rid_hex(honest)]  # newest first
    assert_matches_chain(env, tc)


def test_unanswered_request_expires_then_is_refunded(env: DashEnv) -> None:
    tc = env.app()
    rid, _ = env.client.request(env.user, env.attested_id, sample_pixels(2))
    env.advance(TIMEOUT)
    r = request_json(tc, rid)
    assert (r["status"], r["stage"]) == ("EXPIRED", "expired")
    env.client.refund(env.user, rid)
    r = request_json(tc, rid)
    assert (r["status"], r["stage"], r["refunded"], r["final_output"]) == ("REFUNDED", "refunded", True, None)
    assert_matches_chain(env, tc)


def test_models_list_modes_commitments_and_retirement(env: DashEnv) -> None:
    tc = env.app()
    env.client.request(env.user, env.exact_id, sample_pixels(0))
    env.client.retire_model(env.owner, env.attested_id)
    models = {m["id"]: m for m in tc.get("/api/dashboard/state").json()["models"]}
    exact, attested = models[env.exact_id], models[env.attested_id]
    assert (exact["mode"], exact["program_commitment"], exact["onnx_hash"]) == (
        "EXACT",
        DIGITS["program_commitment"],
        DIGITS["onnx_keccak256"],
    )
    assert (exact["fee"], exact["bond"], exact["input_length"], exact["output_length"]) == (
        str(FEE),
        str(BOND),
        64,
        1,
    )
    assert exact["uri"].startswith("file://") and exact["retired"] is False and exact["requests"] == 1
    assert (attested["mode"], attested["program_commitment"], attested["retired"]) == ("ATTESTED", None, True)
    assert attested["uri"] == "https://models.example/<b>not html</b>.onnx"  # served as data, never as markup


def test_token_fees_are_shown_in_their_asset(env: DashEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real = erc20.metadata

    def metadata(w3: Web3, address: str) -> erc20.TokenMeta:
        reads.append(address)
        return real(w3, address)

    monkeypatch.setattr(indexer_module.erc20, "metadata", metadata)
    tst, tst_model = token_model(env.client, env.owner, "TestToken", 5 * 10**18)
    bare, bare_model = token_model(env.client, env.owner, "NoReturnToken", 7)  # no symbol(), no decimals()
    tc = env.app()
    tok = env.w3.eth.contract(address=tst, abi=artifacts.load("TestToken").abi)
    tok.functions.mint(env.user, 5 * 10**18).transact({"from": env.owner})
    rid, _ = env.client.request(env.user, tst_model, sample_pixels(0))
    models = {m["id"]: m for m in tc.get("/api/dashboard/state").json()["models"]}
    asset = ("fee", "fee_token", "fee_symbol", "fee_decimals")
    assert tuple(models[tst_model][k] for k in asset) == (str(5 * 10**18), tst, "TST", 18)
    assert tuple(models[bare_model][k] for k in asset) == ("7", bare, bare, 0)  # the address stands in
    assert tuple(models[env.exact_id][k] for k in asset) == (str(FEE), None, "ETH", 18)
    assert tuple(request_json(tc, rid)[k] for k in asset) == (str(5 * 10**18), tst, "TST", 18)
    # An operator's fees_earned is wei: a token fee is not added to it.
    env.client.submit(env.operator, rid, b"\x01")
    env.advance(WINDOW)
    env.client.finalize(env.user, rid, b"\x01")
    assert operator_json(tc.get("/api/dashboard/state").json(), env.operator)["fees_earned"] == "0"
    assert sorted(reads) == sorted([tst, bare])  # read once per token, however many refreshes


def test_models_and_requests_from_before_the_start_block_keep_their_fee_asset(env: DashEnv) -> None:
    # A dashboard started on a long-lived chain indexes from a recent block: the token model's ModelRegistered
    # and the first requests are older. Before, their fees were shown as ETH and a token fee was added to an
    # operator's fees_earned as if it were wei.
    tst, tst_model = token_model(env.client, env.owner, "TestToken", 5 * 10**18)
    tok = env.w3.eth.contract(address=tst, abi=artifacts.load("TestToken").abi)
    tok.functions.mint(env.user, 10 * 10**18).transact({"from": env.owner})
    early_tok, _ = env.client.request(env.user, tst_model, sample_pixels(0))
    early_eth, _ = env.client.request(env.user, env.attested_id, sample_pixels(1))
    for rid in (early_tok, early_eth):
        env.client.submit(env.operator, rid, b"\x01")
    start = env.w3.eth.block_number + 1
    env.advance(WINDOW)
    for rid in (early_tok, early_eth):
        env.client.finalize(env.user, rid, b"\x01")  # settlements of requests the dashboard never saw
    later, _ = env.client.request(env.user, tst_model, sample_pixels(2))
    tc = env.app(start_block=start)
    state = tc.get("/api/dashboard/state").json()
    asset = ("fee", "fee_token", "fee_symbol", "fee_decimals")
    assert tuple(request_json(tc, later)[k] for k in asset) == (str(5 * 10**18), tst, "TST", 18)
    models = {m["id"]: m for m in state["models"]}
    assert tuple(models[tst_model][k] for k in asset) == (str(5 * 10**18), tst, "TST", 18)
    assert models[tst_model]["registered_block"] is None and models[tst_model]["requests"] == 1
    assert operator_json(state, env.operator)["fees_earned"] == str(FEE)  # the ETH fee only


def test_unknown_request_is_404_and_malformed_id_is_422(env: DashEnv) -> None:
    tc = env.app()
    r = tc.get(f"/api/dashboard/requests/{rid_hex(12345)}")
    assert r.status_code == 404 and "no request" in r.json()["detail"]
    assert tc.get("/api/dashboard/requests/12345").status_code == 404
    for bad in ("0xzz", "-1", "1" * 80, "0x" + "f" * 65):
        assert tc.get(f"/api/dashboard/requests/{bad}").status_code == 422, bad
    assert tc.get("/api/dashboard/state?limit=0").status_code == 422
    assert tc.get("/api/dashboard/state?limit=1001").status_code == 422


def test_state_limit_keeps_the_newest_requests(env: DashEnv) -> None:
    tc = env.app()
    ids = [env.client.request(env.user, env.exact_id, sample_pixels(i))[0] for i in range(3)]
    state = tc.get("/api/dashboard/state?limit=2").json()
    assert [r["id"] for r in state["requests"]] == [rid_hex(ids[2]), rid_hex(ids[1])]
    assert state["totals"]["requests"] == 3


# ---------------------------------------------------------------------------- indexer


def test_index_is_cached_between_refreshes(env: DashEnv) -> None:
    now = [100.0]
    ix = DashboardIndexer(
        env.client, start_block=env.deployment.block, min_interval=1.0, clock=lambda: now[0]
    )
    first = ix.snapshot()
    rid, _ = env.client.request(env.user, env.exact_id, sample_pixels(0))
    now[0] += 0.5
    assert ix.snapshot() is first and rid not in first.requests_by_id
    now[0] += 0.5
    assert rid in ix.snapshot().requests_by_id
    rid2, _ = env.client.request(env.user, env.exact_id, sample_pixels(1))
    assert rid2 in ix.snapshot(force=True).requests_by_id


def test_readers_get_the_last_snapshot_while_another_thread_refreshes(env: DashEnv) -> None:
    ix = DashboardIndexer(env.client, start_block=env.deployment.block, min_interval=0)
    first = ix.snapshot()
    env.client.request(env.user, env.exact_id, sample_pixels(0))
    with ix._lock:  # noqa: SLF001 - stands in for a refresh stuck on a slow RPC
        assert ix.snapshot() is first  # not queued behind it
    assert len(ix.snapshot().requests) == 1


def test_reorged_blocks_are_dropped_from_the_index(env: DashEnv) -> None:
    ix = DashboardIndexer(env.client, start_block=env.deployment.block, min_interval=0)
    snap = env.rpc("evm_snapshot")
    rid, _ = env.client.request(env.user, env.exact_id, sample_pixels(0))
    assert rid in ix.snapshot().requests_by_id
    env.rpc("evm_revert", [snap])
    for _ in range(3):
        env.rpc("evm_mine")
    other, _ = env.client.request(env.user, env.exact_id, sample_pixels(1))
    s = ix.snapshot()
    assert rid not in s.requests_by_id and other in s.requests_by_id
    assert s.requests_seen == 1


def test_a_reorg_at_the_same_height_is_found_by_hash(env: DashEnv) -> None:
    """The index goes through the one chain follower: a one-block reorg that keeps the height (anvil_reorg,
    the request's transaction not re-included) is found by the block's hash, not by a shorter chain."""
    ix = DashboardIndexer(env.client, start_block=env.deployment.block, min_interval=0)
    rid, _ = env.client.request(env.user, env.exact_id, sample_pixels(0))
    head = env.w3.eth.block_number
    assert rid in ix.snapshot().requests_by_id
    env.rpc("anvil_reorg", [1, []])
    assert env.w3.eth.block_number == head
    s = ix.snapshot()
    assert rid not in s.requests_by_id and s.block == head and s.requests_seen == 0


class FlakyProvider(Web3.HTTPProvider):
    """Fails the ``fail_at``-th eth_getBlockByNumber call, as a dropped connection would."""

    fail_at = 0
    calls = 0

    def make_request(self, method: Any, params: Any) -> Any:
        if method == "eth_getBlockByNumber":
            self.calls += 1
            if self.calls == self.fail_at:
                raise ConnectionError("connection dropped")
        return super().make_request(method, params)


@pytest.mark.parametrize("fail_at", [2, 4, 6])
def test_a_refresh_that_fails_midway_never_counts_an_event_twice(env: DashEnv, fail_at: int) -> None:
    ids = [env.client.request(env.user, env.exact_id, sample_pixels(i))[0] for i in range(3)]
    for i, rid in enumerate(ids):
        env.client.submit(env.operator, rid, sample_output(i))
    provider = FlakyProvider(env.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    provider.fail_at = fail_at
    flaky = OracleClient(Web3(provider), env.deployment.oracle)
    ix = DashboardIndexer(flaky, start_block=env.deployment.block, min_interval=0, block_range=1)
    try:
        ix.snapshot()
    except Exception:  # noqa: BLE001 - the first read may fail outright (nothing to serve yet)
        pass  # 4 and 6 fail part-way through the ranges: some are folded, the rest are not
    s = ix.snapshot()
    assert s.error is None and s.requests_seen == 3 and set(s.requests_by_id) == set(ids)
    [op] = [o for o in s.operators if o.address == env.operator]
    assert (op.results_submitted, op.locked) == (3, 3 * BOND)


def test_memory_is_bounded_by_evicting_settled_requests(env: DashEnv) -> None:
    ix = DashboardIndexer(env.client, start_block=env.deployment.block, min_interval=0, max_requests=2)
    done, _ = env.client.request(env.user, env.attested_id, sample_pixels(0))
    env.advance(TIMEOUT)
    env.client.refund(env.user, done)
    open_ = [env.client.request(env.user, env.exact_id, sample_pixels(i))[0] for i in (1, 2)]
    s = ix.snapshot()
    assert set(s.requests_by_id) == set(open_) and s.requests_seen == 3


def test_unreachable_chain_is_503_then_stale_after_a_good_read(env: DashEnv) -> None:
    dead = OracleClient(
        Web3(Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 2})), env.deployment.oracle
    )
    app = FastAPI()
    app.include_router(dashboard_router(dead, refresh_interval=0))
    r = TestClient(app).get("/api/dashboard/state")
    assert r.status_code == 503 and "check that the RPC endpoint is up" in r.json()["detail"]

    w3 = Web3(Web3.HTTPProvider(env.w3.provider.endpoint_uri))  # type: ignore[attr-defined]
    live = OracleClient(w3, env.deployment.oracle)
    app = FastAPI()
    app.include_router(dashboard_router(live, start_block=env.deployment.block, refresh_interval=0))
    tc = TestClient(app)
    assert tc.get("/api/dashboard/state").json()["chain"]["stale"] is False
    w3.provider = Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 2})
    chain = tc.get("/api/dashboard/state").json()["chain"]
    assert chain["stale"] is True and chain["error"]


# ---------------------------------------------------------------------------- try-it


def test_try_it_is_404_with_a_clear_message_when_disabled(env: DashEnv) -> None:
    tc = env.app()
    for body in ({"pixels": [0] * 64}, {"pixels": "nonsense"}, None):
        r = tc.post("/api/try", json=body)
        assert r.status_code == 404, r.text
        assert "try-it is disabled" in r.json()["detail"] and "try_signer" in r.json()["detail"]
    config = tc.get("/api/try/config").json()
    assert config["enabled"] is False and "try_signer" in config["reason"]


def test_try_it_half_configured_is_refused_at_startup(env: DashEnv) -> None:
    with pytest.raises(ConfigError, match="both try_signer and try_model_id"):
        dashboard_router(env.client, try_signer=env.user)
    with pytest.raises(ConfigError, match="both try_signer and try_model_id"):
        dashboard_router(env.client, try_model_id=env.exact_id)


@pytest.mark.parametrize(
    "body",
    [
        {"pixels": [0] * 63},
        {"pixels": [0] * 65},
        {"pixels": [0] * 63 + [17]},
        {"pixels": [-1] + [0] * 63},
        {"pixels": ["3"] + [0] * 63},
        {"pixels": [3.5] + [0] * 63},
        {"pixels": [True] + [0] * 63},
        {"pixels": None},
        {"pixels": "0" * 64},
        {},
        {"pixels": [0] * 64, "model_id": 1},
        [0] * 64,
    ],
)
def test_try_it_rejects_bad_pixels_with_422_and_sends_nothing(env: DashEnv, body: Any) -> None:
    tc = env.app(try_signer=env.user, try_model_id=env.exact_id)
    block = env.w3.eth.block_number
    r = tc.post("/api/try", json=body)
    assert r.status_code == 422, r.text
    assert env.w3.eth.block_number == block


def test_try_it_rejects_a_body_that_is_not_json(env: DashEnv) -> None:
    tc = env.app(try_signer=env.user, try_model_id=env.exact_id)
    r = tc.post("/api/try", content=b"pixels=1,2,3", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_try_it_sends_the_drawing_paid_by_the_try_signer(env: DashEnv) -> None:
    tc = env.app(try_signer=env.user, try_model_id=env.exact_id)
    config = tc.get("/api/try/config").json()
    assert config == {
        "enabled": True,
        "model_id": env.exact_id,
        "fee": str(FEE),
        "requester": env.user,
        "pixels": 64,
        "max_intensity": 16,
        "reason": None,
    }
    pixels = list(sample_pixels(3))
    r = tc.post("/api/try", json={"pixels": pixels})
    assert r.status_code == 200, r.text
    out = r.json()
    rid = int(out["request_id"], 16)
    assert (out["model_id"], out["fee"], out["requester"]) == (env.exact_id, str(FEE), env.user)
    view = env.client.get_request(rid)
    assert (view.requester, view.model_id, view.status) == (env.user, env.exact_id, Status.PENDING)
    assert rid == OracleClient.compute_request_id(
        rid >> 192, bytes(pixels)
    )  # the id binds exactly these pixels
    r = request_json(tc, rid)  # indexed at once: the page's first poll finds it
    assert r["input"] == "0x" + bytes(pixels).hex() and r["stage"] == "requested"


def test_try_it_is_rate_limited(env: DashEnv) -> None:
    tc = env.app(try_signer=env.user, try_model_id=env.exact_id, try_per_minute=1)
    assert tc.post("/api/try", json={"pixels": [1] * 64}).status_code == 200
    r = tc.post("/api/try", json={"pixels": [2] * 64})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_try_it_with_a_missing_or_retired_model_says_what_to_fix(env: DashEnv) -> None:
    tc = env.app(try_signer=env.user, try_model_id=999)
    config = tc.get("/api/try/config").json()
    assert config["enabled"] is False and "not registered" in config["reason"]
    r = tc.post("/api/try", json={"pixels": [1] * 64})
    assert r.status_code == 409 and "try_model_id" in r.json()["detail"]

    env.client.retire_model(env.owner, env.exact_id)
    tc = env.app(try_signer=env.user, try_model_id=env.exact_id)
    assert tc.get("/api/try/config").json()["enabled"] is False
    r = tc.post("/api/try", json={"pixels": [1] * 64})
    assert r.status_code == 409 and "retired" in r.json()["detail"]


# ---------------------------------------------------------------------------- pages and routes


def test_pages_and_static_files_are_served_from_the_package(env: DashEnv) -> None:
    tc = env.app()
    page = tc.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for marker in ('id="requests-table"', 'id="operators-table"', 'id="disputes-table"', 'id="models-table"'):
        assert marker in page.text
    page = tc.get("/try")
    assert page.status_code == 200 and 'id="grid"' in page.text and 'data-testid="try-status"' in page.text
    for name, media in (
        ("style.css", "text/css"),
        ("common.js", "text/javascript"),
        ("dashboard.js", "text/javascript"),
        ("try.js", "text/javascript"),
    ):
        r = tc.get(f"/dashboard/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media), name
        assert (
            tc.get(f"/dashboard/static/{name}", headers={"If-None-Match": r.headers["etag"]}).status_code
            == 304
        )
    assert tc.get("/dashboard/static/missing.js").status_code == 404
    for bad in ("..%2Frouter.py", "dashboard.html", "x.py"):
        assert tc.get(f"/dashboard/static/{bad}").status_code in (404, 422), bad


def test_every_route_declares_its_response(env: DashEnv) -> None:
    for kw in ({}, {"try_signer": env.user, "try_model_id": env.exact_id}):
        router = dashboard_router(env.client, **kw)  # type: ignore[arg-type]
        routes = [r for r in router.routes if isinstance(r, APIRoute)]
        assert {(r.path, m) for r in routes for m in r.methods} == {
            ("/dashboard", "GET"),
            ("/try", "GET"),
            ("/dashboard/static/{name}", "GET"),
            ("/api/dashboard/state", "GET"),
            ("/api/dashboard/requests/{request_id}", "GET"),
            ("/api/dashboard/games", "GET"),
            ("/api/try/config", "GET"),
            ("/api/try", "POST"),
        }
        for r in routes:
            if r.path.startswith("/api/"):
                assert r.response_model is not None, r.path
            else:
                assert r.response_class is not None and r.response_model is None, r.path
    schema = env.app(try_signer=env.user, try_model_id=env.exact_id).get("/openapi.json").json()
    assert schema["paths"]["/api/try"]["post"]["requestBody"]["content"]["application/json"]
    assert "DashboardState" in schema["components"]["schemas"]
