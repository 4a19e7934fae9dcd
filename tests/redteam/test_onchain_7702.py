"""Red team, issue 9 item 2: program chunks that change after registration (EIP-7702).

On prague an EOA's code is its 23-byte delegation designator ``0xef0100 || delegate``, which the EOA rewrites
with any new type-4 transaction. The attacker offers such an account as a program chunk, with a commitment
that matches what the registry would read from it, planning to change or empty the "program" later
(honest results proven wrong, or every challenge reverting). The registry must refuse any chunk it did not
write itself; a chunk it wrote can never change (CREATE-deployed code that starts with STOP).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from oracle.chain import artifacts
from oracle.chain.devnet import DEV_MNEMONIC
from oracle.chain.tx import deploy
from oracle.chain.types import Mode, ModelSpec
from oracle.profile.models import program_bytes
from tests.contracts.conftest import BOND, FEE, System, deployed, system  # noqa: F401  (fixtures)

Account.enable_unaudited_hdwallet_features()


def _attacker(index: int = 12) -> LocalAccount:
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def _delegate(w3: Web3, attacker: LocalAccount, target: str) -> dict:
    """A real EIP-7702 (type 4) transaction: the attacker's EOA delegates to ``target``."""
    nonce = w3.eth.get_transaction_count(attacker.address)
    # The authorization is signed by the same account that sends the transaction, so it carries the
    # nonce after the transaction's own.
    auth = attacker.sign_authorization({"chainId": w3.eth.chain_id, "address": target, "nonce": nonce + 1})
    tx = {
        # Sent to a plain account: calling itself would run the delegate's code.
        "type": 4, "chainId": w3.eth.chain_id, "nonce": nonce, "to": w3.eth.accounts[19], "value": 0,
        "gas": 100_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "data": b"",
        "authorizationList": [auth],
    }
    signed = attacker.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    assert receipt["status"] == 1
    return receipt


@pytest.fixture
def attacker(system: System) -> Iterator[LocalAccount]:  # noqa: F811
    acct = _attacker()
    assert system.w3.eth.get_balance(acct.address) > 10**18  # a funded dev account
    yield acct


def _spec(program: bytes) -> tuple:
    return ModelSpec(onnx_hash=b"\x33" * 32, fee=FEE, bond=BOND, input_length=64, output_length=1, mode=Mode.EXACT,
                     uri="file:///digits.onnx", program_commitment=Web3.keccak(program)).as_tuple()


def test_delegated_eoa_is_refused_as_a_program_chunk(system: System, attacker: LocalAccount) -> None:  # noqa: F811
    w3 = system.w3
    # Two delegate targets: any contracts will do (the designator names them; they never run here).
    first, second = system.deployment.verifier, system.deployment.oracle
    _delegate(w3, attacker, first)
    code = bytes(w3.eth.get_code(attacker.address))
    assert code == bytes.fromhex("ef0100") + bytes.fromhex(first[2:]), "anvil is not running prague"

    # The attack: real chunks for the bulk of the program, the EOA as the last chunk. The commitment is
    # what a reader of chunk code sees (payload = code after its first byte), so it matches.
    program = program_bytes("digits")
    real = system.client.write_program(system.owner, program)
    payload = code[1:]
    f = system.oracle.functions.registerModel
    count = system.client.model_count()
    err = system.chain.reverts(f(_spec(program + payload), [*real, attacker.address]), system.owner,
                               "ForeignProgramChunk", gas=10_000_000)
    assert err.args_decoded == (attacker.address,)
    # Wherever it sits in the list.
    system.chain.reverts(f(_spec(payload + program), [attacker.address, *real]), system.owner,
                         "ForeignProgramChunk", gas=10_000_000)
    assert system.client.model_count() == count

    # Why it matters: the account rewrites its code at will (what it would do after registration).
    _delegate(w3, attacker, second)
    assert bytes(w3.eth.get_code(attacker.address)) == bytes.fromhex("ef0100") + bytes.fromhex(second[2:])

    # The honest path is untouched: chunks the registry wrote register fine.
    mid = system.chain.ok(f(_spec(program), real), system.owner, gas=10_000_000)
    assert mid["status"] == 1 and system.client.model_count() == count + 1


def test_immutable_contract_not_written_by_the_registry_is_refused_too(system: System) -> None:  # noqa: F811
    """Provenance, not code shape: a data chunk written by another contract (the test writer, same
    DataChunks layout) is refused, because the registry cannot vouch for how its code came to be."""
    program = program_bytes("digits")
    art = artifacts.load("VerifierChunkWriter")
    writer = system.w3.eth.contract(address=deploy(system.w3, art.abi, art.bytecode, system.owner), abi=art.abi)
    receipt = system.chain.ok(writer.functions.write(program), system.owner, gas=8_000_000)
    chunk = writer.events.ChunkWritten().process_receipt(receipt)[0]["args"]["chunk"]
    assert bytes(system.w3.eth.get_code(chunk))[1:] == program
    system.chain.reverts(system.oracle.functions.registerModel(_spec(program), [chunk]), system.owner,
                         "ForeignProgramChunk", gas=10_000_000)
