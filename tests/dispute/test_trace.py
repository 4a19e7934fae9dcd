"""The state commitment: Python (oracle.profile.trace) and Solidity (StateMerkle) agree, and the trace's
states are the reference interpreter's (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract

from oracle.chain import artifacts
from oracle.chain.tx import deploy
from oracle.dispute.synthetic import chained_mlp
from oracle.profile.codec import encode_tensor
from oracle.profile.reference import run_all, run_bytes
from oracle.profile.trace import (
    ZERO,
    Trace,
    depth,
    merkle_root,
    perturb_at,
    root_of,
    tensor_bytes,
    tensor_hash,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def harness(session_w3: Web3, accounts: list[str]) -> Contract:
    art = artifacts.load("StateMerkleHarness")
    return session_w3.eth.contract(address=deploy(session_w3, art.abi, art.bytecode, accounts[0]), abi=art.abi)


@SETTINGS
@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=0, max_size=1200))
def test_tensor_hash_matches_solidity(harness: Contract, values: list[int]) -> None:
    data = tensor_bytes(values)
    assert harness.functions.tensorHash(data).call() == tensor_hash(data)


@SETTINGS
@given(st.integers(2, 70), st.data())
def test_state_roots_and_proofs_match_solidity(harness: Contract, n: int, data: st.DataObject) -> None:
    d = depth(n)
    assert harness.functions.depth(n).call() == d
    leaves = [ZERO] * (1 << d)
    filled = data.draw(st.sets(st.integers(0, n - 1), max_size=n))
    for t in filled:
        leaves[t] = tensor_hash(tensor_bytes([t, 7 * t]))
    root = merkle_root(leaves)
    index = data.draw(st.integers(0, n - 1))
    from oracle.profile.trace import merkle_proof

    proof = merkle_proof(leaves, index)
    assert root_of(leaves[index], index, proof) == root
    assert harness.functions.rootOf(leaves[index], index, proof, d).call() == root
    if len(filled) <= 1:
        leaf = leaves[index] if index in filled else tensor_hash(b"\x01" * 8)
        only = [ZERO] * (1 << d)
        only[index] = leaf
        assert harness.functions.singleLeafRoot(leaf, index, d).call() == merkle_root(only)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.sampled_from([8, 16, 40]), st.integers(0, 2**31), st.data())
def test_trace_follows_the_reference(layers: int, width: int, seed: int, data: st.DataObject) -> None:
    program = chained_mlp(layers, width, seed=seed % 1000)
    x = np.random.default_rng(seed).integers(-128, 128, size=program.input_shape)
    trace = Trace(program, x)
    outs = run_all(program, x)
    n = len(program.ops)
    # Each state differs from the previous exactly in the op's output leaf, which is the reference's value.
    for k, (op, out) in enumerate(zip(program.ops, outs, strict=True)):
        before, after = trace.leaves(k), trace.leaves(k + 1)
        assert before[op.output] == ZERO
        assert after[op.output] == tensor_hash(tensor_bytes(out))
        assert [i for i in range(len(before)) if before[i] != after[i]] == [op.output]
        assert root_of(after[op.output], op.output, trace.proof(k, op.output)) == trace.root(k + 1)
    assert trace.output_bytes() == run_bytes(program, encode_tensor(x, program.input_width))
    # A lie at op j changes state j+1 onwards and nothing before.
    j = data.draw(st.integers(0, n - 1))
    lie = Trace(program, x, tamper=perturb_at(j))
    assert all(lie.root(k) == trace.root(k) for k in range(j + 1))
    assert lie.root(j + 1) != trace.root(j + 1)
