"""On-chain rule: unbonding outlasts the challenge window plus the longest game (two full clocks).

Deployed directly, without ``deploy_system`` (whose Python pre-check would refuse first): the game's
constructor reads the oracle's window and unbonding period and reverts ``UnbondingTooShort``.
"""

from __future__ import annotations

import pytest
from web3 import Web3

from oracle.chain import artifacts
from oracle.chain.deploy import DeployParams, create_address
from oracle.chain.tx import deploy
from oracle.errors import ContractRevert
from tests.dispute.conftest import GAME_BOND, GameSystem


def _deploy_game(gs: GameSystem, oracle: str, clock: int) -> str:
    g = artifacts.load("DisputeGame")
    return deploy(gs.w3, g.abi, g.bytecode, gs.owner, oracle, gs.deployment.verifier, GAME_BOND, clock,
                  gs.game.functions.STEP_GAS_BOUND().call(), gs.game.functions.PROVER().call())


def test_a_game_whose_longest_play_outlasts_unbonding_cannot_be_deployed(gs: GameSystem) -> None:
    """Against the fixture's oracle (window 600 s, unbonding 3 days): the largest clock that fits deploys,
    one second more is refused with the custom error."""
    oracle = gs.client.contract.functions
    window, unbonding = oracle.CHALLENGE_WINDOW().call(), oracle.UNBONDING_PERIOD().call()
    longest = (unbonding - window) // 2
    assert gs.game.functions.CLOCK().call() <= longest  # the fixture's own game satisfies the rule
    with pytest.raises(ContractRevert) as err:
        _deploy_game(gs, gs.deployment.oracle, longest + 1)
    assert err.value.name == "UnbondingTooShort"
    assert err.value.args_decoded == (unbonding, window + 2 * (longest + 1))
    assert Web3.is_address(_deploy_game(gs, gs.deployment.oracle, longest))


def test_an_oracle_trusting_a_game_that_breaks_the_rule_gets_no_game(gs: GameSystem) -> None:
    """The full deployment path by hand: the oracle trusts the next address (window 600 s, unbonding 1 h),
    the game there would have a 1,600 s clock (600 + 3,200 > 3,600): it is refused, so the trusted address
    holds no code."""
    w3, owner = gs.w3, gs.owner
    o = artifacts.load("InferenceOracle")
    nonce = w3.eth.get_transaction_count(Web3.to_checksum_address(owner), "pending")
    predicted = create_address(owner, nonce + 1)
    params = DeployParams(challenge_window=600, request_timeout=900, unbonding_period=3600)
    oracle = deploy(w3, o.abi, o.bytecode, owner, *params.oracle_args(gs.deployment.verifier, predicted))
    with pytest.raises(ContractRevert) as err:
        _deploy_game(gs, oracle, 1600)
    assert err.value.name == "UnbondingTooShort"
    assert w3.eth.get_code(predicted) == b""
    assert _deploy_game(gs, oracle, 1500) == predicted  # 600 + 3,000 <= 3,600: the same nonce, now accepted
