"""Red team, issue 9 items 3 and 7: proofs that cannot fit one transaction.

- Item 3: registration dry-ran only the all-zero input (the cheapest: the MatMul kernel skips zeros). A
  model that is cheap on zeros but far over the per-transaction gas cap on real inputs let wrong results
  finalize unprovable. Now the registry bounds the proof from shapes and widths and refuses such models.
- Item 7: the proof transaction also runs the consumer's callback with the gas the requester chose. A
  requester colluding with the operator asks for the most callback gas, so that the proof no longer fits
  the cap. Now each model carries the largest callback gas that still fits next to its proof, and a
  request asking for more is refused; with the maximum, the challenge still fits the cap.
"""

from __future__ import annotations

import numpy as np

from oracle.chain import artifacts
from oracle.chain.tx import deploy
from oracle.profile.codec import encode_tensor
from oracle.profile.reference import run_bytes
from tests.contracts.conftest import BOND, FEE, System, deployed, system  # noqa: F401  (fixtures)
from tests.contracts.proof_gas import TX_GAS_CAP, ProofGas, chained_matmuls, matmul_with_callback_cap


def _pg(system: System) -> ProofGas:  # noqa: F811
    return ProofGas(system.w3, system.oracle, system.owner, system.operator, system.user, system.challenger)


def test_cheap_on_zeros_expensive_on_real_inputs_is_refused(system: System) -> None:  # noqa: F811
    """The issue's model: 25 chained MatMuls over one 256x256 int8 matrix."""
    pg = _pg(system)
    program = chained_matmuls(25, 256)
    fn, chunks, _ = pg.register_fn(program)
    count = system.client.model_count()
    # The old check: the all-zero input runs well under the cap...
    zeros = bytes(256)
    used = pg.meter.functions.measure(
        pg.verifier.address, pg.verifier.functions.executeStored(chunks, zeros)._encode_transaction_data()
    ).call({"gas": 90_000_000})
    assert used[0] and used[1] < 3_000_000
    # ...but a real input does not, so the model is refused at registration.
    err = system.chain.reverts(fn, system.owner, "ProofGasTooHigh", gas=60_000_000)
    assert err.args_decoded[0] > TX_GAS_CAP and err.args_decoded[1] == TX_GAS_CAP
    assert system.client.model_count() == count
    x = encode_tensor(np.random.default_rng(1).integers(-128, 128, size=(1, 256)), 1)
    used = pg.meter.functions.measure(
        pg.verifier.address, pg.verifier.functions.executeStored(chunks, x)._encode_transaction_data()
    ).call({"gas": 90_000_000})
    assert not used[0] or used[1] > TX_GAS_CAP  # indeed unprovable in one transaction


def test_colluding_requester_cannot_push_a_challenge_over_the_cap(system: System) -> None:  # noqa: F811
    pg = _pg(system)
    # A model whose proof alone leaves little room under the cap (its callback cap is 0.3M-0.8M gas).
    program = matmul_with_callback_cap(300_000, 800_000)
    k = program.input_shape[1]
    reg = pg.register(program)
    assert TX_GAS_CAP - 2_000_000 < reg.bound < TX_GAS_CAP
    assert 0 < reg.callback_cap < 1_000_000

    # The requester's consumer burns every unit of gas it gets.
    art = artifacts.load("GasHungryConsumer")
    hungry = system.w3.eth.contract(address=deploy(system.w3, art.abi, art.bytecode, system.owner,
                                                   system.deployment.oracle), abi=art.abi)
    x = encode_tensor(np.full((1, k), 127, dtype=np.int64), 1)  # no zero activation: the worst input
    system.chain.reverts(hungry.functions.request(reg.model_id, x, reg.callback_cap + 1), system.user,
                         "CallbackGasTooHigh", value=FEE)
    system.chain.reverts(hungry.functions.request(reg.model_id, x, 1_000_000), system.user,
                         "CallbackGasTooHigh", value=FEE)

    # With the most it may ask for, the operator's wrong answer is still provable in one transaction.
    rid = pg.open_wrong(reg, x, callback=hungry, callback_gas=reg.callback_cap)
    need = pg.challenge_gas(rid, x)
    assert need <= TX_GAS_CAP
    stake_before = system.client.stake_of(system.operator).staked
    receipt = pg.challenge_with(rid, x, TX_GAS_CAP)
    assert receipt["status"] == 1
    (ev,) = system.client.events_in(receipt, "FraudProven")
    assert bytes(ev["correctOutput"]) == run_bytes(program, x)
    assert ev["callbackSucceeded"] is False  # it ran out of its (capped) gas; the proof stands
    assert system.client.stake_of(system.operator).staked == stake_before - BOND
    assert system.client.status_of(rid).name == "FRAUD_PROVEN"


def test_a_model_with_no_room_left_takes_no_callbacks(system: System) -> None:  # noqa: F811
    pg = _pg(system)
    program = matmul_with_callback_cap(0, 0)
    k = program.input_shape[1]
    reg = pg.register(program)
    assert reg.bound <= TX_GAS_CAP and reg.callback_cap == 0
    x = encode_tensor(np.full((1, k), -128, dtype=np.int64), 1)
    system.chain.reverts(system.oracle.functions.requestInference(reg.model_id, x, 1), system.user,
                         "CallbackGasTooHigh", value=FEE)
    rid = pg.open_wrong(reg, x)
    assert pg.challenge_gas(rid, x) <= reg.bound
    assert pg.challenge_with(rid, x, reg.bound)["status"] == 1
