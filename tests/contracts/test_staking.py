"""Operator stake, bonds, unbonding; no escape from a slash by unstaking."""

from __future__ import annotations

from tests.contracts.conftest import BOND, OUTPUT, UNBONDING, System


def test_stake_emits_and_accumulates(system: System) -> None:
    op = system.accounts[6]
    r = system.chain.ok(system.oracle.functions.stake(), op, value=5 * BOND)
    assert system.client.events_in(r, "Staked")[0]["totalStaked"] == 5 * BOND
    system.chain.ok(system.oracle.functions.stake(), op, value=BOND)
    assert system.client.stake_of(op).staked == 6 * BOND
    system.chain.reverts(system.oracle.functions.stake(), op, "ZeroAmount", value=0)


def test_submit_requires_free_stake(system: System) -> None:
    rid = system.request()
    unstaked = system.accounts[6]
    err = system.chain.reverts(system.oracle.functions.submitResult(rid, OUTPUT), unstaked, "InsufficientFreeStake")
    assert err.args_decoded == (unstaked, BOND, 0)
    system.chain.ok(system.oracle.functions.stake(), unstaked, value=BOND)
    system.submit(system.request(), operator=unstaked)  # exactly one bond of free stake
    system.chain.reverts(system.oracle.functions.submitResult(rid, OUTPUT), unstaked, "InsufficientFreeStake")


def test_submit_errors(system: System) -> None:
    rid = system.request()
    system.chain.reverts(system.oracle.functions.submitResult(rid, OUTPUT[:31]), system.operator,
                         "OutputLengthMismatch")
    system.chain.reverts(system.oracle.functions.submitResult(12345, OUTPUT), system.operator, "UnknownRequest")


def test_cannot_unstake_locked_stake(system: System) -> None:
    op = system.accounts[6]
    system.chain.ok(system.oracle.functions.stake(), op, value=2 * BOND)
    system.submit(system.request(), operator=op)
    system.chain.reverts(system.oracle.functions.requestUnstake(2 * BOND), op, "InsufficientFreeStake")
    r = system.chain.ok(system.oracle.functions.requestUnstake(BOND), op)
    ev = system.client.events_in(r, "UnstakeRequested")[0]
    assert ev["withdrawableAt"] == system.chain.now() + UNBONDING
    s = system.client.stake_of(op)
    assert (s.staked, s.locked, s.pending) == (BOND, BOND, BOND)
    system.chain.reverts(system.oracle.functions.requestUnstake(0), op, "ZeroAmount")


def test_withdraw_only_after_unbonding(system: System) -> None:
    op = system.accounts[6]
    system.chain.ok(system.oracle.functions.stake(), op, value=BOND)
    system.chain.reverts(system.oracle.functions.withdrawStake(op), op, "NothingToWithdraw")
    system.chain.ok(system.oracle.functions.requestUnstake(BOND), op)
    ready = system.client.stake_of(op).withdrawable_at
    system.chain.reverts(system.oracle.functions.withdrawStake(op), op, "UnbondingNotOver", at=ready - 1)
    to = system.accounts[8]
    before = system.chain.balance(to)
    r = system.chain.ok(system.oracle.functions.withdrawStake(to), op, at=ready)
    assert system.client.events_in(r, "StakeWithdrawn")[0]["amount"] == BOND
    assert system.chain.balance(to) == before + BOND
    assert system.client.stake_of(op).pending == 0
    system.chain.reverts(system.oracle.functions.withdrawStake(to), op, "NothingToWithdraw")


def test_new_unstake_restarts_the_clock(system: System) -> None:
    op = system.accounts[6]
    system.chain.ok(system.oracle.functions.stake(), op, value=2 * BOND)
    system.chain.ok(system.oracle.functions.requestUnstake(BOND), op)
    first = system.client.stake_of(op).withdrawable_at
    system.chain.ok(system.oracle.functions.requestUnstake(BOND), op, at=first - 10)
    assert system.client.stake_of(op).withdrawable_at == first - 10 + UNBONDING
    assert system.client.stake_of(op).pending == 2 * BOND


def test_invalid_deployment_parameters_rejected(system: System) -> None:
    from oracle.chain.deploy import DeployParams, deploy_system
    from oracle.errors import ContractRevert

    for bad in (DeployParams(challenge_window=100, unbonding_period=100), DeployParams(min_bond_ratio=1),
                DeployParams(min_bond_ratio=2), DeployParams(max_callback_gas=2**24), DeployParams(challenge_window=0),
                DeployParams(max_assignment_weight=DeployParams.min_operator_stake - 1),
                DeployParams(max_assignment_weight=2**80)):
        try:
            deploy_system(system.w3, system.owner, bad, verifier=system.deployment.verifier)
        except ContractRevert as exc:
            assert exc.name == "InvalidParameters"
        else:
            raise AssertionError(f"{bad} accepted")
