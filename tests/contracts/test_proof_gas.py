"""The proof-gas bound at registration: every challenge of a registered EXACT model fits the per-transaction
gas cap on every input, callback included; models that could not fit are refused.

Measured on real challenges (``eth_estimateGas``: the smallest gas limit that succeeds), and every
challenge is then sent with exactly its model's ``proofGasBound`` as gas limit, which must succeed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oracle.profile import gas_bound
from oracle.profile.models import program_bytes
from oracle.profile.program import decode
from tests.contracts.conftest import System
from tests.contracts.proof_gas import (
    TX_GAS_CAP,
    ProofGas,
    adversarial_inputs,
    chained_matmuls,
    encode_input,
    extreme_inputs,
    matmul_with_callback_cap,
    random_inputs,
    single_matmul,
)

#: Shipped programs proven by the dispute game, not one transaction (tests/profile/test_transformer_chain.py)
GAME_PROVABLE = {"digits_transformer"}
#: Every other shipped EXACT program (oracle/models/*.program): its one-transaction proof fits the cap.
SHIPPED = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "oracle" / "models").glob("*.program")
                 if p.stem not in GAME_PROVABLE)


@pytest.fixture
def pg(system: System) -> ProofGas:
    return ProofGas(system.w3, system.oracle, system.owner, system.operator, system.user, system.challenger)


def _inputs(program, seed: int = 0) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    shape, w = program.input_shape, program.input_width
    return [np.zeros(shape, dtype=np.int64), *extreme_inputs(shape, w), *random_inputs(shape, w, 2, seed),
            *adversarial_inputs(program)]


def _prove_all(pg: ProofGas, program, inputs) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    reg = pg.register(program)
    assert 0 < reg.bound <= TX_GAS_CAP
    worst = 0
    for x in inputs:
        xb = encode_input(program, x)
        rid = pg.open_wrong(reg, xb)
        need = pg.challenge_gas(rid, xb)
        assert need <= reg.bound, f"challenge needs {need} > bound {reg.bound}"
        receipt = pg.challenge_with(rid, xb, reg.bound)
        assert receipt["status"] == 1 and receipt["gasUsed"] <= reg.bound
        worst = max(worst, need)
    return reg.bound, worst


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_challenges_fit_their_bound(pg: ProofGas, name: str) -> None:
    program = decode(program_bytes(name))
    bound, worst = _prove_all(pg, program, _inputs(program))
    assert worst <= bound <= 1.5 * worst


@pytest.mark.parametrize("name", sorted(GAME_PROVABLE))
def test_game_provable_shipped_models_really_are_over_the_one_transaction_cap(name: str) -> None:
    data = program_bytes(name)
    assert gas_bound.execution_bound(decode(data), len(data)).total > TX_GAS_CAP


@pytest.mark.parametrize("name", ["digits", "near-cap", "tight", "no-room"])
def test_registry_figures_are_the_python_mirror(pg: ProofGas, name: str) -> None:
    """proofGasBound and the callback cap can be predicted off-chain from the program bytes alone."""
    program = {"digits": lambda: decode(program_bytes("digits")),
               "near-cap": lambda: single_matmul(1, 1200, 1024, 1, 1),
               "tight": lambda: matmul_with_callback_cap(100_000, 900_000),
               "no-room": lambda: matmul_with_callback_cap(0, 0)}[name]()
    reg = pg.register(program)
    exec_gas, _, _ = pg.verifier.functions.executionGasBound(reg.chunks).call()
    assert exec_gas == gas_bound.execution_bound(program, len(reg.data)).total
    assert reg.bound == gas_bound.proof_gas_bound(program, len(reg.data))
    assert reg.callback_cap == gas_bound.callback_gas_cap(program, len(reg.data))


def test_near_cap_model_fits_on_its_worst_inputs(pg: ProofGas) -> None:
    """A single MatMul sized so that its bound is close to the cap: registered, and challenges of its
    worst inputs (every activation at the int8 extremes: no zero to skip) fit under the bound."""
    program = single_matmul(1, 1100, 1024, 1, 1)
    bound, worst = _prove_all(pg, program, extreme_inputs(program.input_shape, 1)[:2])
    assert bound > TX_GAS_CAP // 2 and worst <= bound <= 1.5 * worst


@pytest.mark.parametrize(
    ("label", "program"),
    [
        # Issue 9, item 3: one 256x256 weight matrix reused by 25 chained MatMuls (1.7M gas on zeros,
        # 47.9M on a random input) and a 1x1024x1024 MatMul with int32 input (16.8M on extreme inputs).
        ("25 chained 256x256 MatMuls", chained_matmuls(25, 256)),
        ("1x1024x1024 int32-input MatMul", single_matmul(1, 1024, 1024, 1, 4)),
    ],
)
def test_models_whose_proof_cannot_fit_are_refused(system: System, pg: ProofGas, label: str, program) -> None:  # type: ignore[no-untyped-def]
    fn, _, data = pg.register_fn(program)
    count = system.client.model_count()
    err = system.chain.reverts(fn, system.owner, "ProofGasTooHigh", gas=60_000_000)
    bound, cap = err.args_decoded
    assert cap == TX_GAS_CAP and bound > TX_GAS_CAP, label
    assert bound >= gas_bound.execution_bound(program, len(data)).total
    assert system.client.model_count() == count


def test_bound_refusal_follows_the_deployment_cap(system: System, pg: ProofGas) -> None:
    """The same model is accepted under a larger cap: the cap is a deployment parameter."""
    from oracle.chain.deploy import DeployParams, deploy_system

    program = single_matmul(1, 1024, 1024, 1, 4)
    params = DeployParams(challenge_window=600, request_timeout=900, unbonding_period=3 * 86_400,
                          tx_gas_cap=60_000_000)
    dep = deploy_system(system.w3, system.owner, params)
    from oracle.chain.client import OracleClient

    big = ProofGas(system.w3, OracleClient(system.w3, dep.oracle).contract, system.owner, system.operator,
                   system.user, system.challenger)
    reg = big.register(program)
    assert TX_GAS_CAP < reg.bound <= 60_000_000
    assert big.oracle.functions.TX_GAS_CAP().call() == 60_000_000


def test_attested_models_have_no_bound_and_the_global_callback_cap(system: System) -> None:
    assert system.client.proof_gas_bound(system.model_id) == (0, 1_000_000)
    bound, cap = system.client.proof_gas_bound(system.exact_id)
    assert 0 < bound < 1_000_000 and cap == 1_000_000
    system.chain.reverts(system.oracle.functions.proofGasBound(999), system.user, "UnknownModel")
