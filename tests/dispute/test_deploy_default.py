"""The dispute game is deployed by default, with a clock the unbonding period can outlast (enforced)."""

from __future__ import annotations

import pytest
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import DEFAULT_GAME_CLOCK, DeployParams, deploy_system
from oracle.dispute.party import game_address, game_contract


def test_game_is_deployed_by_default_with_a_clock_that_fits(w3: Web3, accounts: list[str]) -> None:
    assert DeployParams().dispute_game and DeployParams().clock() == DEFAULT_GAME_CLOCK
    params = DeployParams(challenge_window=600, request_timeout=900, unbonding_period=3600)
    assert params.clock() == (3600 - 600) // 2  # shortened so that window + two full clocks <= unbonding
    dep = deploy_system(w3, accounts[0], params)
    client = OracleClient(w3, dep.oracle)
    assert dep.dispute_game and game_address(client) == dep.dispute_game
    assert game_contract(w3, dep.dispute_game).functions.CLOCK().call() == 1500


def test_unbonding_shorter_than_window_plus_the_longest_game_is_refused(w3: Web3, accounts: list[str]) -> None:
    params = DeployParams(challenge_window=600, request_timeout=900, unbonding_period=3 * 86_400,
                          game_clock=2 * 86_400)
    with pytest.raises(ValueError, match="unbonding_period"):
        deploy_system(w3, accounts[0], params)
    # without a game the oracle's own rule (unbonding > window) is all that applies
    assert deploy_system(w3, accounts[0], DeployParams(challenge_window=600, request_timeout=900,
                                                       unbonding_period=3 * 86_400, game_clock=2 * 86_400,
                                                       dispute_game=False)).dispute_game == ""
