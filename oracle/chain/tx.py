"""Sending transactions for scripts, tests and the SDK (the worker has its own nonce-owning submitter).

A *signer* is either a :class:`eth_account.signers.local.LocalAccount` (a key held in this process) or the
address of an account the node manages (anvil's unlocked dev accounts). Reverts come back as
:class:`oracle.errors.ContractRevert` with the custom error's name.
"""

from __future__ import annotations

from typing import Any, cast

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.types import TxParams, TxReceipt

from oracle.chain.gas import gas_limit
from oracle.chain.reverts import decode_revert_data, from_web3_error
from oracle.errors import ChainError

Signer = LocalAccount | str


def address_of(signer: Signer) -> str:
    return signer.address if isinstance(signer, LocalAccount) else Web3.to_checksum_address(signer)


def send(
    w3: Web3,
    fn: ContractFunction,
    signer: Signer,
    *,
    value: int = 0,
    gas: int | None = None,
    wait: bool = True,
) -> TxReceipt:
    """Estimates (which surfaces reverts with their decoded error), signs if needed, sends, waits."""
    sender = address_of(signer)
    params: TxParams = {"from": sender, "value": value}  # type: ignore[typeddict-item]
    try:
        if gas is None:
            gas = gas_limit(fn.estimate_gas(params))
    except ContractLogicError as exc:
        raise from_web3_error(exc) from exc
    params["gas"] = gas
    if isinstance(signer, LocalAccount):
        nonce = w3.eth.get_transaction_count(Web3.to_checksum_address(sender), "pending")
        tx = fn.build_transaction(cast(TxParams, {**params, "nonce": nonce}))
        signed = signer.sign_transaction(tx)  # type: ignore[arg-type]
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    else:
        tx_hash = fn.transact(params)
    if not wait:
        return {"transactionHash": tx_hash}  # type: ignore[typeddict-item]
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1:
        raise replay_revert(w3, tx_hash, receipt)
    return receipt


def replay_revert(w3: Web3, tx_hash: Any, receipt: TxReceipt) -> ChainError:
    """Re-runs a failed transaction as a call at its block to recover the revert reason."""
    tx = w3.eth.get_transaction(tx_hash)
    call: dict[str, Any] = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"],
                            "gas": tx["gas"]}
    try:
        w3.eth.call(call, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
    except ContractLogicError as exc:
        return from_web3_error(exc)
    except Exception as exc:  # noqa: BLE001 - report whatever the node said
        return ChainError(f"transaction {tx_hash.hex()} failed: {exc}")
    return decode_revert_data(None)


def deploy(w3: Web3, abi: list[dict[str, Any]], bytecode: str, signer: Signer, *args: Any,
           value: int = 0) -> str:
    """Deploys a contract and returns its checksum address."""
    factory = w3.eth.contract(abi=abi, bytecode=bytecode)
    ctor = factory.constructor(*args)
    sender = address_of(signer)
    params: dict[str, Any] = {"from": sender, "value": value}
    try:
        params["gas"] = gas_limit(ctor.estimate_gas(cast(TxParams, params)))
    except ContractLogicError as exc:
        raise from_web3_error(exc) from exc
    if isinstance(signer, LocalAccount):
        nonce = w3.eth.get_transaction_count(Web3.to_checksum_address(sender), "pending")
        tx = ctor.build_transaction(cast(TxParams, {**params, "nonce": nonce}))
        tx_hash = w3.eth.send_raw_transaction(signer.sign_transaction(tx).raw_transaction)
    else:
        tx_hash = ctor.transact(cast(TxParams, params))
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise replay_revert(w3, tx_hash, receipt)
    return Web3.to_checksum_address(receipt["contractAddress"])
