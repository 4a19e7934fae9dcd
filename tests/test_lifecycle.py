"""oracle.lifecycle: the status derivation is the contract's, at every time and after every history."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.types import TxReceipt

from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment
from oracle.lifecycle import (
    Status,
    derive_status,
    is_attested,
    is_challengeable,
    is_final,
    is_finalizable,
    is_refundable,
    stage,
)
from oracle.profile.models import model_entry
from tests.contracts.conftest import FEE, OUTPUT, TIMEOUT, WINDOW, Chain, System, deployed  # noqa: F401

SAMPLE = model_entry("digits")["samples"][0]
PIXELS = bytes.fromhex(SAMPLE["input_hex"][2:])
WRONG = bytes([(bytes.fromhex(SAMPLE["expected_output_hex"][2:])[0] + 1) % 10])


@pytest.mark.parametrize(
    ("submitted_at", "now", "expected"),
    [(1000, 1099, Status.SUBMITTED), (1000, 1100, Status.FINALIZABLE), (1000, 5000, Status.FINALIZABLE),
     (None, 1039, Status.PENDING), (None, 1040, Status.EXPIRED)],
)
def test_derived_status_uses_the_contracts_bounds(submitted_at: int | None, now: int, expected: Status) -> None:
    derived = derive_status(requested_at=990, submitted_at=submitted_at, finalized=False, fraud=False,
                            refunded=False, now=now, challenge_window=100, request_timeout=50)
    assert derived is expected


def test_each_status_allows_exactly_its_moves() -> None:
    assert [s for s in Status if is_challengeable(s)] == [Status.SUBMITTED]
    assert [s for s in Status if is_finalizable(s)] == [Status.FINALIZABLE]
    assert [s for s in Status if is_refundable(s)] == [Status.EXPIRED]
    assert [s for s in Status if is_attested(s)] == [Status.SUBMITTED, Status.FINALIZABLE]
    assert [s for s in Status if is_final(s)] == [Status.REFUNDED, Status.FINALIZED, Status.FRAUD_PROVEN]
    assert [s for s in Status if s.is_final] == [s for s in Status if is_final(s)]
    assert {stage(s) for s in Status if s is not Status.NONE} == {
        "requested", "attested", "finalized", "fraud_proven", "expired", "refunded"}


# ---------------------------------------------------------------------------- against the contract


@dataclass
class Facts:
    """What the events of one request say (what a reader of the chain knows without calling statusOf)."""

    exact: bool
    requested_at: int
    submitted_at: int | None = None
    finalized: bool = False
    fraud: bool = False
    refunded: bool = False


# A step: an action on the i-th request (modulo how many there are), or a warp to one of its deadlines +-1.
ACTIONS = st.sampled_from(["request", "request_exact", "submit", "submit", "challenge", "finalize", "refund",
                           "warp", "warp", "warp"])
STEP = st.tuples(ACTIONS, st.integers(0, 3), st.sampled_from(["submit_by", "challenge_by"]), st.integers(-1, 1))
#: every status at least once, each deadline hit at -1, 0 and +1
STORY = [("request", 0, "", 0), ("submit", 0, "", 0), ("warp", 0, "challenge_by", -1),
         ("warp", 0, "challenge_by", 0), ("finalize", 0, "", 0), ("request_exact", 0, "", 0),
         ("submit", 1, "", 0), ("challenge", 1, "", 0), ("request", 0, "", 0), ("warp", 2, "submit_by", -1),
         ("warp", 2, "submit_by", 0), ("refund", 2, "", 0), ("request", 0, "", 0), ("warp", 3, "submit_by", 1)]


def _apply(system: System, facts: list[Facts], step: tuple[str, int, str, int]) -> None:
    action, i, kind, offset = step
    chain, fns = system.chain, system.oracle.functions
    at = chain.now() + 1
    if action in ("request", "request_exact"):
        exact = action == "request_exact"
        receipt = chain.send(fns.requestInference(system.exact_id if exact else system.model_id,
                                                  PIXELS if exact else bytes(range(1, 65)), 0),
                             system.user, value=FEE, at=at)
        _fold(system, facts, receipt, exact)
        return
    if not facts:
        return
    rid, f = system_ids(system)[i % len(facts)], facts[i % len(facts)]
    output = WRONG if f.exact else OUTPUT
    if action == "warp":
        base = f.requested_at + TIMEOUT if kind == "submit_by" or f.submitted_at is None else f.submitted_at + WINDOW
        chain.mine(max(base + offset, at))
        return
    fn = {"submit": fns.submitResult(rid, output), "challenge": fns.challenge(rid, PIXELS),
          "finalize": fns.finalize(rid, output), "refund": fns.refund(rid)}[action]
    sender = {"submit": system.operator, "challenge": system.challenger}.get(action, system.user)
    _fold(system, facts, chain.send(fn, sender, gas=6_000_000, at=at), f.exact)


def system_ids(system: System) -> list[int]:
    return [e.request_id for e in system.client.requested_events(0, system.w3.eth.block_number)]


def _fold(system: System, facts: list[Facts], receipt: TxReceipt, exact: bool) -> None:
    at = int(system.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
    ids = system_ids(system)
    for _ in system.client.events_in(receipt, "InferenceRequested"):
        facts.append(Facts(exact=exact, requested_at=at))
    for name, fold in (("ResultSubmitted", "submitted_at"), ("RequestFinalized", "finalized"),
                       ("FraudProven", "fraud"), ("RequestRefunded", "refunded")):
        for ev in system.client.events_in(receipt, name):
            f = facts[ids.index(ev["requestId"])]
            setattr(f, fold, at if fold == "submitted_at" else True)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=14))
@example(steps=STORY)
def test_derived_status_equals_statusOf_at_random_times(
    session_w3: Web3, deployed: tuple[Deployment, int], accounts: list[str],  # noqa: F811
    steps: list[tuple[str, int, str, int]],
) -> None:
    dep, model_id = deployed
    client = OracleClient(session_w3, dep.oracle)
    snap = session_w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        system = System(session_w3, Chain(session_w3), dep, client, client.contract, accounts, model_id)
        facts: list[Facts] = []
        for step in steps:
            _apply(system, facts, step)
            now = system.chain.now()
            for rid, f in zip(system_ids(system), facts, strict=True):
                derived = derive_status(requested_at=f.requested_at, submitted_at=f.submitted_at,
                                        finalized=f.finalized, fraud=f.fraud, refunded=f.refunded, now=now,
                                        challenge_window=WINDOW, request_timeout=TIMEOUT)
                assert derived is client.status_of(rid), (step, f, now)
    finally:
        session_w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
