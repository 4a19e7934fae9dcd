"""Exclusive assignment: each request is reserved for one staked operator, drawn by free stake, for
``EXCLUSIVE_PERIOD`` seconds; then anyone staked may answer.

The attack it stops (issue 12, problem 4): the output of a pending ``submitResult`` is in clear calldata,
so a copier who sees it in the mempool sends the same output with a higher tip and takes the fee. The
control case (assignment off, the behaviour before it) shows the attack working on the same chain.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from web3 import Web3
from web3.contract import Contract

from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.types import Mode, ModelSpec, Status
from tests.contracts.conftest import BOND, FEE, INPUT, OUTPUT, TIMEOUT, UNBONDING, WINDOW, Chain

EXCLUSIVE = 60
TX_GAS_CAP = 16_777_216


@dataclass
class Assigned:
    w3: Web3
    chain: Chain
    client: OracleClient
    oracle: Contract
    model_id: int
    operators: list[str]
    user: str
    copier: str

    def request(self, data: bytes = INPUT) -> tuple[int, str]:
        """Requests; returns the id and its assignee (zero address: none)."""
        receipt = self.chain.ok(self.oracle.functions.requestInference(self.model_id, data, 0), self.user, value=FEE)
        assert receipt["gasUsed"] <= TX_GAS_CAP
        (ev,) = self.client.events_in(receipt, "InferenceRequested")
        return int(ev["requestId"]), str(ev["assignee"])

    def request_for_operators(self) -> tuple[int, str]:
        """A request assigned to one of the operators, not to the copier."""
        for i in range(50):
            rid, who = self.request(random.Random(i).randbytes(64))
            if who in self.operators:
                return rid, who
        raise AssertionError("no request assigned to the operators in 50 tries")

    def others(self, who: str) -> list[str]:
        return [o for o in self.operators if o != who]


def _deploy(w3: Web3, accounts: list[str], exclusive: int, stakes: list[int], copier: bool = False,
            params: DeployParams | None = None) -> Assigned:
    params = params or DeployParams(challenge_window=WINDOW, request_timeout=TIMEOUT, exclusive_period=exclusive,
                                    unbonding_period=UNBONDING)
    dep = deploy_system(w3, accounts[0], params)
    client = OracleClient(w3, dep.oracle)
    model_id = client.register_model(accounts[0], ModelSpec(
        onnx_hash=b"\x22" * 32, fee=FEE, bond=BOND, input_length=64, output_length=32, mode=Mode.ATTESTED,
        uri="file:///models/assigned.onnx"))
    operators = accounts[10:10 + len(stakes)]
    for op, amount in zip(operators, stakes, strict=True):
        client.stake(op, amount)
    if copier:  # staked like anyone: it can post the bond, and is assigned its own share of requests
        client.stake(accounts[15], 10**18)
    return Assigned(w3, Chain(w3), client, client.contract, model_id, operators, accounts[3], accounts[15])


@pytest.fixture
def assigned(w3: Web3, accounts: list[str]) -> Iterator[Assigned]:
    yield _deploy(w3, accounts, EXCLUSIVE, [10**18, 10**18], copier=True)


def _front_run(s: Assigned, rid: int, honest: str) -> tuple[str, str]:
    """The honest operator sends its answer; the copier sees it pending and sends the same output with a
    higher tip, both mined in one block. Returns who holds the result and how the copier's call ended."""
    s.chain.rpc("evm_setAutomine", [False])
    try:
        base = int(s.w3.eth.get_block("latest")["baseFeePerGas"] or 0)
        fn = s.oracle.functions.submitResult(rid, OUTPUT)
        honest_tx = fn.transact({"from": honest, "gas": 300_000, "maxFeePerGas": 4 * base + 10**9,
                                 "maxPriorityFeePerGas": 1})
        pending = s.w3.eth.get_transaction(honest_tx)
        copied = s.oracle.decode_function_input(pending["input"])[1]["output"]
        copy_tx = s.oracle.functions.submitResult(rid, copied).transact(
            {"from": s.copier, "gas": 300_000, "maxFeePerGas": 4 * base + 10**10, "maxPriorityFeePerGas": 10**9})
        s.chain.mine()
    finally:
        s.chain.rpc("evm_setAutomine", [True])
    r_honest = s.w3.eth.wait_for_transaction_receipt(honest_tx)
    r_copy = s.w3.eth.wait_for_transaction_receipt(copy_tx)
    assert r_honest["blockNumber"] == r_copy["blockNumber"]
    assert r_copy["transactionIndex"] < r_honest["transactionIndex"]  # the copier went first
    outcome = "ok" if r_copy["status"] == 1 else s.chain.revert_of(r_copy).name
    return s.client.get_request(rid).operator, outcome


def test_copier_front_running_takes_the_fee_without_assignment(w3: Web3, accounts: list[str]) -> None:
    """Control: with assignment off (the oracle before this change) the attack works."""
    s = _deploy(w3, accounts, 0, [10**18], copier=True)
    rid, assignee = s.request()
    assert int(assignee, 16) == 0
    assert _front_run(s, rid, s.operators[0]) == (s.copier, "ok")
    assert s.client.stake_of(s.copier).locked == BOND  # the copier's attestation: it will take the fee


def test_copier_front_running_the_assignee_reverts(assigned: Assigned) -> None:
    s = assigned
    rid, assignee = s.request_for_operators()
    assert s.client.get_request(rid).operator == assignee and s.client.status_of(rid) is Status.PENDING
    assert _front_run(s, rid, assignee) == (assignee, "NotAssigned")
    assert s.client.stake_of(s.copier).locked == 0
    # The error names the assignee and the period's end.
    rid1, who1 = s.request_for_operators()
    err = s.chain.reverts(s.oracle.functions.submitResult(rid1, OUTPUT), s.copier, "NotAssigned")
    assert err.args_decoded == (rid1, who1, s.client.get_request(rid1).requested_at + EXCLUSIVE)
    # A batch skips the requests reserved for others instead of reverting.
    rid2, who = s.request_for_operators()
    other = s.others(who)[0]
    fn = s.oracle.functions.submitResults([rid2], [OUTPUT])
    assert fn.call({"from": other}) == 0
    assert fn.call({"from": who}) == 1


def test_absent_assignee_loses_only_the_job(assigned: Assigned) -> None:
    s = assigned
    rid, assignee = s.request_for_operators()
    other = s.others(assignee)[0]
    requested_at = s.client.get_request(rid).requested_at
    s.chain.reverts(s.oracle.functions.submitResult(rid, OUTPUT), other, "NotAssigned",
                    at=requested_at + EXCLUSIVE - 1)
    before = s.client.stake_of(assignee)
    # From the period's end on anyone staked answers: the request is not lost for the requester.
    s.chain.ok(s.oracle.functions.submitResult(rid, OUTPUT), other, at=requested_at + EXCLUSIVE)
    view = s.client.get_request(rid)
    assert view.operator == other and view.status is Status.SUBMITTED
    # The absent assignee is not slashed and keeps answering what it is assigned.
    assert s.client.stake_of(assignee) == before
    s.chain.reverts(s.oracle.functions.submitResult(rid, OUTPUT), assignee, "AlreadySubmitted")


def test_assignment_needs_free_stake_for_the_bond(w3: Web3, accounts: list[str]) -> None:
    """An operator whose free stake cannot cover the bond is never assigned (it could not answer)."""
    s = _deploy(w3, accounts, EXCLUSIVE, [10**18, BOND - 1])
    poor = s.operators[1]
    assignees = Counter(s.request(random.Random(i).randbytes(64))[1] for i in range(40))
    assert assignees[poor] == 0 and assignees[s.operators[0]] > 30


def test_selection_frequency_follows_free_stake(w3: Web3, accounts: list[str]) -> None:
    """Free stakes about 1:2:3, the heaviest's stake partly locked by open results (its weight is what is
    free, not what is staked): the assignees of 300 requests (inputs from a fixed seed) pass a chi-square
    test against the free stakes at p = 0.001."""
    s = _deploy(w3, accounts, EXCLUSIVE, [10**18, 2 * 10**18, 3 * 10**18 + 50 * BOND])
    heavy = s.operators[2]
    # 50 answered requests lock 50 bonds of the heaviest operator: its free stake is back to 3 ETH.
    locked = 0
    while locked < 50:
        rid, who = s.request(random.Random(-locked - 1).randbytes(64))
        if who != heavy:
            if who in s.operators:  # else no assignee (every draw rejected): left pending
                s.chain.ok(s.oracle.functions.submitResult(rid, OUTPUT), who)
            continue
        s.chain.ok(s.oracle.functions.submitResult(rid, OUTPUT), heavy)
        locked += 1
    free = [s.client.contract.functions.freeStake(o).call() for o in s.operators]
    assert free[2] == 3 * 10**18 and s.client.stake_of(heavy).locked == 50 * BOND
    rng = random.Random(12)
    counts = Counter(s.request(rng.randbytes(64))[1] for _ in range(300))
    unassigned = 300 - sum(counts[o] for o in s.operators)
    # Four draws each accepted with probability >= 1/2 here: almost every request is assigned.
    assert unassigned <= 15
    total = sum(counts[o] for o in s.operators)
    weights = [f / sum(free) for f in free]
    chi2 = sum((counts[o] - total * w) ** 2 / (total * w) for o, w in zip(s.operators, weights, strict=True))
    assert chi2 < 13.82, (counts, weights)  # 2 degrees of freedom, p = 0.001


def test_unstaking_everything_leaves_the_roster(w3: Web3, accounts: list[str]) -> None:
    s = _deploy(w3, accounts, EXCLUSIVE, [10**18, 10**18])
    leaver, stayer = s.operators
    s.chain.ok(s.oracle.functions.requestUnstake(10**18), leaver)
    assignees = {s.request(random.Random(i).randbytes(64))[1] for i in range(20)}
    assert leaver not in assignees and stayer in assignees
    # Staking again lists it again.
    s.client.stake(leaver, 10**18)
    assignees = {s.request(random.Random(100 + i).randbytes(64))[1] for i in range(30)}
    assert leaver in assignees


def test_operator_ids_survive_roster_swaps_and_relisting(w3: Web3, accounts: list[str]) -> None:
    """Results record operators by id (it shares the result's slot with the time, flags and output hash).
    Unlisting swaps the last roster entry into the leaver's place: the moved operator keeps its id, so its
    assignments and answers still name it, and a returning operator gets its old id back, not a new one."""
    s = _deploy(w3, accounts, EXCLUSIVE, [10**18, 10**18, 10**18])
    leaver, stayer, moved = s.operators
    s.chain.ok(s.oracle.functions.requestUnstake(10**18), leaver)  # `moved` now sits in the leaver's place
    for i in range(60):
        rid, who = s.request(random.Random(300 + i).randbytes(64))
        if who == moved:
            break
    else:
        raise AssertionError("the moved operator was never assigned")
    assert s.client.get_request(rid).operator == moved
    s.chain.reverts(s.oracle.functions.submitResult(rid, OUTPUT), stayer, "NotAssigned")
    s.chain.ok(s.oracle.functions.submitResult(rid, OUTPUT), moved)
    view = s.client.get_request(rid)
    assert view.operator == moved and view.attests(OUTPUT)
    s.chain.mine(view.submitted_at + WINDOW)
    receipt = s.chain.ok(s.oracle.functions.finalize(rid, OUTPUT), stayer)
    (ev,) = s.client.events_in(receipt, "RequestFinalized")
    assert ev["operator"] == moved and s.client.stake_of(moved).locked == 0
    # The leaver comes back: listed again under its old id (no new id is used up).
    before = _operator_count(s)
    s.client.stake(leaver, 10**18)
    assert _operator_count(s) == before == 3
    for i in range(60):
        rid, who = s.request(random.Random(400 + i).randbytes(64))
        if who == leaver:
            break
    else:
        raise AssertionError("the returning operator was never assigned")
    s.chain.ok(s.oracle.functions.submitResult(rid, OUTPUT), leaver)
    assert s.client.get_request(rid).operator == leaver


def _counter_slot(s: Assigned) -> int:
    """The storage slot of the request nonce, which packs the roster size, the weight cap and the operator
    count (`OracleStorage`): found by its known content, not by a hard-coded layout."""
    requests = _request_count(s)
    for slot in range(64):
        v = int.from_bytes(s.w3.eth.get_storage_at(s.oracle.address, slot), "big")
        if v and v & (2**64 - 1) == requests and (v >> 64) & (2**32 - 1) == _listed(s):
            return slot
    raise AssertionError("no slot holds the request nonce")


def _listed(s: Assigned) -> int:
    return sum(1 for o in s.operators if s.client.stake_of(o).staked > 0)


def _request_count(s: Assigned) -> int:
    return len(s.oracle.events.InferenceRequested().get_logs(from_block=0))


def _operator_count(s: Assigned) -> int:
    v = int.from_bytes(s.w3.eth.get_storage_at(s.oracle.address, _counter_slot(s)), "big")
    return (v >> 176) & (2**24 - 1)


def test_operator_ids_run_out_with_a_clear_error(w3: Web3, accounts: list[str]) -> None:
    """Ids are 24 bits: once 2^24 - 1 operators have staked, a new one is refused with `TooManyOperators`
    (reached here by writing the counter; staking 16.7M accounts for real would cost ~1,500 ETH of gas at 1
    gwei). Operators who already have an id keep staking."""
    s = _deploy(w3, accounts, EXCLUSIVE, [10**18])
    s.request()
    slot = _counter_slot(s)
    v = int.from_bytes(s.w3.eth.get_storage_at(s.oracle.address, slot), "big")
    assert (v >> 176) & (2**24 - 1) == 1
    full = v | ((2**24 - 1) << 176)
    s.chain.rpc("anvil_setStorageAt", [s.oracle.address, hex(slot), "0x" + full.to_bytes(32, "big").hex()])
    s.chain.reverts(s.oracle.functions.stake(), accounts[12], "TooManyOperators", value=10**18)
    s.chain.ok(s.oracle.functions.stake(), s.operators[0], value=10**18)
    assert s.client.stake_of(s.operators[0]).staked == 2 * 10**18


def _dust_stakers(s: Assigned, n: int) -> None:
    """``n`` fresh accounts stake 1 wei each (what a griefer pays: gas only)."""
    for i in range(n):
        acct = Web3.to_checksum_address(f"0x{0xD057 << 140 | i:040x}")
        s.chain.rpc("anvil_setBalance", [acct, hex(10**18)])
        s.chain.rpc("anvil_impersonateAccount", [acct])
        s.chain.ok(s.oracle.functions.stake(), acct, value=1)


@pytest.mark.parametrize("floor", [1, None], ids=["no-floor", "default-floor"])
def test_dust_stakes_cannot_crowd_assignment_out(w3: Web3, accounts: list[str], floor: int | None) -> None:
    """Attack: 30 accounts stake 1 wei each. A draw takes a roster place uniformly, so with them listed most
    draws land on dust (rejected: it cannot cover the bond) and most requests end up with no assignee, open
    to answer-copying again (control: a floor of 1 wei, the rule before). With the default floor
    (``DeployParams.min_operator_stake``) dust is never listed and every request keeps its assignee."""
    params = DeployParams(challenge_window=WINDOW, request_timeout=TIMEOUT, exclusive_period=EXCLUSIVE,
                          unbonding_period=UNBONDING)
    if floor is not None:
        params = replace(params, min_operator_stake=floor)
    s = _deploy(w3, accounts, EXCLUSIVE, [10**18, 10**18], params=params)
    _dust_stakers(s, 30)
    assignees = [s.request(random.Random(500 + i).randbytes(64))[1] for i in range(40)]
    unassigned = sum(int(a, 16) == 0 for a in assignees)
    assert all(a in s.operators or int(a, 16) == 0 for a in assignees)
    if floor == 1:
        assert unassigned >= 20, unassigned  # ~77% expected: (1 - 2/32)^4
    else:
        assert unassigned == 0, unassigned


@pytest.mark.parametrize("cap", [2**80 - 1, None], ids=["no-cap", "default-cap"])
def test_one_large_stake_cannot_leave_most_requests_unassigned(w3: Web3, accounts: list[str],
                                                              cap: int | None) -> None:
    """Attack (or just a skewed market): one operator stakes 1,000 ETH next to eight of 10-80 ETH. A draw
    accepts its operator with probability weight / the largest weight, so with uncapped weights a draw is
    accepted ~15 % of the time and about half the requests end with no assignee (control: a cap above every
    stake, the rule before), open to answer-copying. With the default ``max_assignment_weight`` (32 ETH) a
    draw is accepted ~88 % of the time; the large operator is drawn as if it staked 32 ETH."""
    params = DeployParams(challenge_window=WINDOW, request_timeout=TIMEOUT, exclusive_period=EXCLUSIVE,
                          unbonding_period=UNBONDING)
    if cap is not None:
        params = replace(params, max_assignment_weight=cap)
    stakes = [1000 * 10**18] + [k * 10 * 10**18 for k in range(1, 9)]
    s = _deploy(w3, accounts, EXCLUSIVE, stakes, params=params)
    assert s.oracle.functions.maxAssignmentWeight().call() == (cap or DeployParams().max_assignment_weight)
    # 80 requests: the draws follow prevrandao, i.e. the block numbers the suite's earlier tests leave, so each
    # bound below is kept at least 3 standard deviations from its expectation.
    n = 80
    assignees = Counter(s.request(random.Random(900 + i).randbytes(64))[1] for i in range(n))
    unassigned = sum(k for a, k in assignees.items() if int(a, 16) == 0)
    assert all(a in s.operators or int(a, 16) == 0 for a in assignees)
    if cap is not None:
        assert unassigned >= 24, unassigned  # ~52 % expected: (1 - 1360 / 9000)^4
        assert assignees[s.operators[0]] > sum(assignees[o] for o in s.operators[1:])  # drawn by its full stake
    else:
        assert unassigned <= 2, unassigned  # ~0.02 % expected: (1 - 252 / 288)^4
        assert assignees[s.operators[0]] < n // 3  # ~13 % of the draws: weight 32 of 252


def test_an_operator_below_the_floor_is_never_assigned_but_answers_open_requests(w3: Web3,
                                                                                  accounts: list[str]) -> None:
    s = _deploy(w3, accounts, EXCLUSIVE, [10**18, 2 * BOND])  # 2 bonds: below the 0.1 ETH floor
    listed, small = s.operators
    assert 2 * BOND < DeployParams().min_operator_stake
    assignees = Counter(s.request(random.Random(700 + i).randbytes(64))[1] for i in range(20))
    assert assignees[small] == 0 and assignees[listed] == 20
    rid, _ = s.request(random.Random(800).randbytes(64))
    requested_at = s.client.get_request(rid).requested_at
    s.chain.reverts(s.oracle.functions.submitResult(rid, OUTPUT), small, "NotAssigned")
    s.chain.ok(s.oracle.functions.submitResult(rid, OUTPUT), small, at=requested_at + EXCLUSIVE)
    assert s.client.get_request(rid).operator == small
