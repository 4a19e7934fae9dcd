"""The oracle's views run from `OracleLens` through the oracle's fallback (DELEGATECALL on the oracle's storage).
Under DELEGATECALL `view` is not enforced, so the lens's code itself must hold no instruction that writes state,
calls out, creates, logs or self-destructs: read its runtime bytecode."""

from __future__ import annotations

from oracle.chain import artifacts
from tests.contracts.conftest import System

# SSTORE, TSTORE, LOG0-4, CREATE, CALL, CALLCODE, DELEGATECALL, CREATE2, SELFDESTRUCT. STATICCALL stays allowed
# (precompiles), though the lens makes none.
FORBIDDEN = {0x55: "SSTORE", 0x5D: "TSTORE", 0xA0: "LOG0", 0xA1: "LOG1", 0xA2: "LOG2", 0xA3: "LOG3", 0xA4: "LOG4",
             0xF0: "CREATE", 0xF1: "CALL", 0xF2: "CALLCODE", 0xF4: "DELEGATECALL", 0xF5: "CREATE2",
             0xFF: "SELFDESTRUCT"}


def opcodes(code: bytes) -> list[int]:
    """The instructions of runtime code, PUSH data skipped, the CBOR metadata trailer left out."""
    meta = int.from_bytes(code[-2:], "big") + 2
    code = code[:-meta]
    ops, i = [], 0
    while i < len(code):
        op = code[i]
        ops.append(op)
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return ops


def test_lens_code_has_no_state_changing_instruction(system: System) -> None:
    lens = system.oracle.functions.LENS().call()
    code = bytes(system.w3.eth.get_code(lens))
    # The shipped lens (its immutables filled in at deployment, so compared by length).
    assert len(code) == len(bytes.fromhex(artifacts.load("OracleLens").deployed_bytecode[2:]))
    found = {FORBIDDEN[op] for op in opcodes(code) if op in FORBIDDEN}
    assert not found, f"OracleLens must only read, but its code has {sorted(found)}"
    # The check is able to see them: the oracle itself writes storage and calls out.
    oracle_ops = set(opcodes(bytes(system.w3.eth.get_code(system.deployment.oracle))))
    assert {0x55, 0xF1, 0xF4} <= oracle_ops


def test_views_are_served_at_the_oracle_address_and_unknown_selectors_revert(system: System) -> None:
    rid = system.request()
    assert system.client.status_of(rid).name == "PENDING"  # IOracleViews.statusOf through the fallback
    # The lens called directly reads its own (empty) storage, never the oracle's.
    lens = system.w3.eth.contract(address=system.oracle.functions.LENS().call(), abi=artifacts.load("OracleLens").abi)
    assert lens.functions.statusOf(rid).call() == 0
    tx = system.w3.eth.send_transaction({"from": system.user, "to": system.deployment.oracle, "data": "0xdeadbeef",
                                         "gas": 100_000})
    assert system.w3.eth.wait_for_transaction_receipt(tx)["status"] == 0
    tx = system.w3.eth.send_transaction({"from": system.user, "to": system.deployment.oracle, "value": 1,
                                         "gas": 100_000})
    assert system.w3.eth.wait_for_transaction_receipt(tx)["status"] == 0  # no plain ETH transfers
