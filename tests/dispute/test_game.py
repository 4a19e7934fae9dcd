"""The interactive dispute game on anvil (prague): a model over the one-transaction cap, proven move by move.

Every game transaction is sent with the EIP-7825 cap (16,777,216) as its gas limit and its receipt's
gasUsed is checked against the cap too (anvil does not enforce EIP-7825 itself).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from web3.exceptions import ContractLogicError

from oracle.dispute.actors import TX_GAS_CAP, Actor, GameView, Phase, play
from oracle.profile import gas_bound
from oracle.profile.program import encode
from oracle.profile.trace import Trace, perturb_at
from tests.dispute.conftest import BOND, FEE, GAME_BOND, WINDOW, GameSystem, gas_used, revert_named


def _lying_trace(gs: GameSystem, data: bytes, op_index: int) -> Trace:
    honest = Trace.from_input_bytes(gs.program, data)
    lie = Trace.from_input_bytes(gs.program, data, tamper=perturb_at(op_index))
    assert lie.output_bytes() != honest.output_bytes()
    return lie


def test_model_is_over_the_cap_and_game_provable(gs: GameSystem) -> None:
    data = encode(gs.program)
    whole = gas_bound.execution_bound(gs.program, len(data)).total
    bound, _ = gs.client.contract.functions.proofGasBound(gs.model_id).call()
    assert whole > TX_GAS_CAP and bound > TX_GAS_CAP  # stored over the cap: game-provable
    chunks = gs.client.contract.functions.programChunks(gs.model_id).call()
    assert gs.step_gas_bound() <= TX_GAS_CAP
    # The game's copy of the oracle's proof formula agrees with what the oracle stored.
    exec_gas, n_in, n_out = gs.game.functions.executionGasBound(chunks).call()
    assert gs.steps.functions.proofGasBound(exec_gas, len(chunks), n_in, n_out).call() == bound
    # The one-transaction challenge is not the way: the game is.
    rid, x = gs.request(1)
    honest = Trace.from_input_bytes(gs.program, x)
    gs.client.submit(gs.operator, rid, honest.output_bytes())
    with pytest.raises(ContractLogicError):
        gs.client.contract.functions.challenge(rid, x).estimate_gas({"from": gs.challenger, "gas": TX_GAS_CAP})


@pytest.mark.parametrize("lie_at", [2, 31, 59])
def test_lying_operator_is_slashed_through_the_game(gs: GameSystem, lie_at: int) -> None:
    rid, x = gs.request(2)
    lie = _lying_trace(gs, x, lie_at)
    gs.client.submit(gs.operator, rid, lie.output_bytes())
    staked_before = gs.client.stake_of(gs.operator).staked
    challenger = Actor(gs.w3, gs.game, gs.challenger, Trace.from_input_bytes(gs.program, x), "challenger")
    operator = Actor(gs.w3, gs.game, gs.operator, lie, "operator")
    game_id = challenger.open(rid, x, GAME_BOND)
    # While the game is open the claim cannot be finalized, even after the window.
    gs.advance(WINDOW + 1)
    with revert_named("ChallengeWindowOpen"):
        gs.client.contract.functions.finalize(rid, lie.output_bytes()).call({"from": gs.operator})
    end = play(gs.game, game_id, operator, challenger)
    assert end.phase is Phase.RESOLVED and end.challenger_won
    assert end.lo == lie_at  # bisection found the lying op
    assert gs.client.status_of(rid).name == "FRAUD_PROVEN"
    assert not gs.client.contract.functions.isAttestedOutput(rid, lie.output_bytes()).call()
    assert gs.client.stake_of(gs.operator).staked == staked_before - BOND
    assert gs.client.credits_of(gs.challenger) == BOND - BOND // 2 + FEE
    assert gs.game.functions.credits(gs.challenger).call() == GAME_BOND
    used = gas_used(challenger.receipts + operator.receipts)
    n = len(gs.program.ops)
    assert len(used) <= 2 * (n - 1).bit_length() + 3


def test_honest_operator_defends_against_a_lying_challenger(gs: GameSystem) -> None:
    rid, x = gs.request(3)
    honest = Trace.from_input_bytes(gs.program, x)
    gs.client.submit(gs.operator, rid, honest.output_bytes())
    staked_before = gs.client.stake_of(gs.operator).staked
    liar = Actor(gs.w3, gs.game, gs.challenger, _lying_trace(gs, x, 17), "challenger")
    operator = Actor(gs.w3, gs.game, gs.operator, honest, "operator")
    game_id = liar.open(rid, x, GAME_BOND)
    end = play(gs.game, game_id, operator, liar)
    assert end.phase is Phase.RESOLVED and not end.challenger_won
    assert gs.game.functions.credits(gs.operator).call() == GAME_BOND  # the challenger's bond pays the defence
    gas_used(liar.receipts + operator.receipts)
    # The claim is released: the operator finalizes after the window and keeps its bond.
    gs.advance(WINDOW + 1)
    gs.client.finalize(gs.operator, rid, honest.output_bytes())
    assert gs.client.status_of(rid).name == "FINALIZED"
    info = gs.client.stake_of(gs.operator)
    assert info.staked == staked_before and info.locked == 0


def test_a_losing_challenger_cannot_protect_a_wrong_claim(gs: GameSystem) -> None:
    """A colluding challenger loses on purpose; a second, honest one wins side by side."""
    rid, x = gs.request(4)
    lie = _lying_trace(gs, x, 41)
    gs.client.submit(gs.operator, rid, lie.output_bytes())
    colluder = Actor(gs.w3, gs.game, gs.challenger, lie, "challenger")  # agrees with every lie
    honest = Actor(gs.w3, gs.game, gs.challenger2, Trace.from_input_bytes(gs.program, x), "challenger")
    op1 = Actor(gs.w3, gs.game, gs.operator, lie, "operator")
    op2 = Actor(gs.w3, gs.game, gs.operator, lie, "operator")
    g1 = colluder.open(rid, x, GAME_BOND)
    g2 = honest.open(rid, x, GAME_BOND)
    assert gs.game.functions.openGames(rid).call() == 2
    end1 = play(gs.game, g1, op1, colluder)
    assert not end1.challenger_won
    # The colluder's loss does not release the claim: the honest game is still open.
    gs.advance(WINDOW + 1)
    with revert_named("ChallengeWindowOpen"):
        gs.client.contract.functions.finalize(rid, lie.output_bytes()).call({"from": gs.operator})
    end2 = play(gs.game, g2, op2, honest)
    assert end2.challenger_won
    assert gs.client.status_of(rid).name == "FRAUD_PROVEN"
    assert gs.client.credits_of(gs.challenger2) == BOND - BOND // 2 + FEE
    gas_used(colluder.receipts + honest.receipts + op1.receipts + op2.receipts)


def test_silent_operator_loses_on_time(gs: GameSystem) -> None:
    rid, x = gs.request(5)
    lie = _lying_trace(gs, x, 5)
    gs.client.submit(gs.operator, rid, lie.output_bytes())
    challenger = Actor(gs.w3, gs.game, gs.challenger, Trace.from_input_bytes(gs.program, x), "challenger")
    operator = Actor(gs.w3, gs.game, gs.operator, lie, "operator")
    game_id = challenger.open(rid, x, GAME_BOND)
    operator.move(game_id)  # defends, then falls silent
    assert GameView.read(gs.game, game_id).phase is Phase.BISECT
    clock = gs.game.functions.CLOCK().call()
    with revert_named("ClockRunning"):
        gs.game.functions.timeout(game_id).call({"from": gs.challenger})
    gs.advance(clock + 1)
    with revert_named("ClockExpired"):
        gs.game.functions.bisect(game_id, b"\x00" * 32).call({"from": gs.operator})
    tx = gs.game.functions.timeout(game_id).transact({"from": gs.challenger, "gas": TX_GAS_CAP})
    gas_used([gs.w3.eth.wait_for_transaction_receipt(tx)])
    assert GameView.read(gs.game, game_id).challenger_won
    assert gs.client.status_of(rid).name == "FRAUD_PROVEN"


def test_silent_challenger_loses_on_time(gs: GameSystem) -> None:
    rid, x = gs.request(6)
    honest = Trace.from_input_bytes(gs.program, x)
    gs.client.submit(gs.operator, rid, honest.output_bytes())
    operator = Actor(gs.w3, gs.game, gs.operator, honest, "operator")
    griefer = Actor(gs.w3, gs.game, gs.challenger, honest, "challenger")
    game_id = griefer.open(rid, x, GAME_BOND)
    operator.move(game_id)
    operator.move(game_id)
    assert GameView.read(gs.game, game_id).phase is Phase.CHOOSE
    gs.advance(gs.game.functions.CLOCK().call() + 1)
    gs.game.functions.timeout(game_id).transact({"from": gs.operator})
    assert not GameView.read(gs.game, game_id).challenger_won
    assert gs.game.functions.credits(gs.operator).call() == GAME_BOND
    assert gs.client.contract.functions.getRequest(rid).call()[-1] != 0  # not fraud
    gs.advance(WINDOW)
    gs.client.finalize(gs.operator, rid, honest.output_bytes())


def test_operator_cannot_defend_an_output_it_did_not_attest(gs: GameSystem) -> None:
    rid, x = gs.request(7)
    honest = Trace.from_input_bytes(gs.program, x)
    lie = _lying_trace(gs, x, 50)
    gs.client.submit(gs.operator, rid, lie.output_bytes())
    challenger = Actor(gs.w3, gs.game, gs.challenger, honest, "challenger")
    game_id = challenger.open(rid, x, GAME_BOND)
    out = gs.program.output_id
    n = honest.num_steps
    # The honest final state does not contain the attested (wrong) output.
    with revert_named("OutputNotAttested"):
        gs.game.functions.defend(game_id, honest.root(n), honest.output_values(), honest.proof(n, out)).call(
            {"from": gs.operator})
    # The attested output with a proof against another root is refused.
    with revert_named("RootMismatch"):
        gs.game.functions.defend(game_id, honest.root(n), lie.output_values(), lie.proof(n, out)).call(
            {"from": gs.operator})


def test_step_refuses_operands_not_in_the_agreed_state(gs: GameSystem) -> None:
    rid, x = gs.request(8)
    honest = Trace.from_input_bytes(gs.program, x)
    lie = _lying_trace(gs, x, 30)
    gs.client.submit(gs.operator, rid, lie.output_bytes())
    challenger = Actor(gs.w3, gs.game, gs.challenger, honest, "challenger")
    operator = Actor(gs.w3, gs.game, gs.operator, lie, "operator")
    game_id = challenger.open(rid, x, GAME_BOND)
    while GameView.read(gs.game, game_id).phase is not Phase.STEP:
        assert operator.move(game_id) or challenger.move(game_id)
    g = GameView.read(gs.game, game_id)
    assert g.lo == 30
    good = honest.step_proof(g.lo)
    # Operand values that are not the agreed state's (the lie's own operand of a later op, or altered).
    bad_values = list(good.operands)
    i = next(j for j, v in enumerate(bad_values) if v)
    bad_values[i] = bytes(len(bad_values[i]) - 1) + b"\x05"
    with revert_named("RootMismatch"):
        gs.game.functions.step(game_id, replace(good, operands=bad_values).as_tuple()).call({"from": gs.challenger})
    # The output leaf must be the agreed state's (empty before the op): claiming it already computed fails.
    out = gs.program.ops[g.lo].output
    assert good.out_leaf == b"\x00" * 32
    with revert_named("RootMismatch"):
        gs.game.functions.step(game_id, replace(good, out_leaf=honest.leaves(g.lo + 1)[out]).as_tuple()).call(
            {"from": gs.challenger})
    # Operands proven in the lie's state after the disputed op (not the agreed one) are refused.
    later = lie.step_proof(g.lo + 1)
    with revert_named("RootMismatch"):
        gs.game.functions.step(game_id, replace(good, operands=later.operands, proofs=later.proofs).as_tuple()).call(
            {"from": gs.challenger})
    # A short proof is malformed.
    with pytest.raises(ContractLogicError):
        gs.game.functions.step(game_id, replace(good, proofs=[p[:-1] for p in good.proofs]).as_tuple()).call(
            {"from": gs.challenger})
    # The right proof wins.
    challenger.move(game_id)
    assert GameView.read(gs.game, game_id).challenger_won
    gas_used(challenger.receipts + operator.receipts)


@pytest.mark.parametrize(("seed", "lie_at"), [(8, 30), (8, 33), (8, 34), (8, 35)])
def test_step_gas_is_within_the_registered_step_bound(gs: GameSystem, seed: int, lie_at: int) -> None:
    """The one-step proof of a MatMul, Div or Clip: its receipt is under the plan's step bound (`checkPlan`),
    itself under the cap."""
    rid, x = gs.request(seed)
    honest = Trace.from_input_bytes(gs.program, x)
    lie = _lying_trace(gs, x, lie_at)
    gs.client.submit(gs.operator, rid, lie.output_bytes())
    challenger = Actor(gs.w3, gs.game, gs.challenger, honest, "challenger")
    operator = Actor(gs.w3, gs.game, gs.operator, lie, "operator")
    end = play(gs.game, challenger.open(rid, x, GAME_BOND), operator, challenger)
    assert end.challenger_won and end.lo == lie_at
    bound = gs.step_gas_bound()
    step_receipt = challenger.receipts[-1]
    assert gs.game.events.StepProven().process_receipt(step_receipt)
    used = gas_used(challenger.receipts + operator.receipts)
    assert step_receipt["gasUsed"] <= bound <= TX_GAS_CAP
    assert max(used) == step_receipt["gasUsed"] or max(used) <= bound


def test_fraud_proven_by_a_game_returns_the_callback_deposit_to_the_requester(gs: GameSystem) -> None:
    """A game proves the output wrong without computing the right one, so no callback runs: the deposit a
    consumer contract paid for its callback gas goes back to it, not to the challenger (issue 12's pricing)."""
    import numpy as np

    from oracle.chain import artifacts
    from oracle.chain.tx import deploy
    from oracle.profile.codec import encode_tensor

    art = artifacts.load("RecordingConsumer")
    consumer = gs.w3.eth.contract(address=deploy(gs.w3, art.abi, art.bytecode, gs.owner, gs.deployment.oracle),
                                  abi=art.abi)
    x = encode_tensor(np.random.default_rng(7).integers(-128, 128, size=gs.program.input_shape),
                      gs.program.input_width)
    price = 10**9
    deposit = gs.client.callback_gas_charged(100_000) * price
    tx = consumer.functions.request(gs.model_id, x, 100_000).transact(
        {"from": gs.user, "value": FEE + deposit, "gas": 1_000_000})
    receipt = gs.w3.eth.wait_for_transaction_receipt(tx)
    rid = gs.client.events_in(receipt, "InferenceRequested")[0]["requestId"]
    lie = _lying_trace(gs, x, 31)
    gs.client.submit(gs.operator, rid, lie.output_bytes())
    challenger = Actor(gs.w3, gs.game, gs.challenger, Trace.from_input_bytes(gs.program, x), "challenger")
    operator = Actor(gs.w3, gs.game, gs.operator, lie, "operator")
    end = play(gs.game, challenger.open(rid, x, GAME_BOND), operator, challenger)
    assert end.challenger_won and gs.client.status_of(rid).name == "FRAUD_PROVEN"
    assert gs.client.credits_of(consumer.address) == deposit
    assert gs.client.credits_of(gs.challenger) == BOND - BOND // 2 + FEE  # the reward only, no deposit
    assert consumer.functions.deliveries().call() == 0
