"""Fixtures for contract tests: the system deployed once per session, helpers for time and reverts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment, DeployParams, deploy_system
from oracle.chain.reverts import decode_revert_data
from oracle.chain.tx import deploy
from oracle.chain.types import Mode, ModelSpec
from oracle.errors import ContractRevert
from oracle.profile.models import model_entry, program_bytes

FEE = 10**15
BOND = 4 * FEE
WINDOW = 600
TIMEOUT = 900
UNBONDING = 3 * 24 * 3600
INPUT = bytes(range(1, 65))  # 64 bytes
OUTPUT = bytes(range(100, 132))  # 32 bytes


class Chain:
    """Time control and transaction helpers that observe reverts at the exact block they happen in."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    def rpc(self, method: str, params: list[Any]) -> Any:
        resp = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in resp:
            raise RuntimeError(resp["error"])
        return resp["result"]

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def set_next_time(self, ts: int) -> None:
        self.rpc("evm_setNextBlockTimestamp", [ts])

    def mine(self, ts: int | None = None) -> None:
        self.rpc("evm_mine", [ts] if ts is not None else [])

    def send(self, fn: ContractFunction, sender: str, *, value: int = 0, gas: int = 3_000_000,
             at: int | None = None) -> TxReceipt:
        """Sends with a fixed gas limit (no estimation) so the transaction lands even if it reverts."""
        if at is not None:
            self.set_next_time(at)
        tx = fn.transact({"from": sender, "value": value, "gas": gas})
        return self.w3.eth.wait_for_transaction_receipt(tx)

    def ok(self, fn: ContractFunction, sender: str, **kw: Any) -> TxReceipt:
        receipt = self.send(fn, sender, **kw)
        if receipt["status"] != 1:
            raise AssertionError(f"expected success, got {self.revert_of(receipt)}")
        return receipt

    def revert_of(self, receipt: TxReceipt) -> ContractRevert:
        trace = self.rpc("debug_traceTransaction", [receipt["transactionHash"].to_0x_hex(), {"tracer": "callTracer"}])
        return decode_revert_data(trace.get("output"))

    def reverts(self, fn: ContractFunction, sender: str, name: str, **kw: Any) -> ContractRevert:
        receipt = self.send(fn, sender, **kw)
        assert receipt["status"] == 0, f"expected {name}, but the transaction succeeded"
        err = self.revert_of(receipt)
        assert err.name == name, f"expected {name}, got {err}"
        return err

    def balance(self, addr: str) -> int:
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(addr)))


@dataclass
class System:
    w3: Web3
    chain: Chain
    deployment: Deployment
    client: OracleClient
    oracle: Contract
    accounts: list[str]
    model_id: int  # ATTESTED, 64-byte input, 32-byte output; model_id + 1 is the EXACT digits model

    @property
    def exact_id(self) -> int:
        return self.model_id + 1

    @property
    def owner(self) -> str:
        return self.accounts[0]

    @property
    def operator(self) -> str:
        return self.accounts[1]

    @property
    def operator2(self) -> str:
        return self.accounts[2]

    @property
    def user(self) -> str:
        return self.accounts[3]

    @property
    def challenger(self) -> str:
        return self.accounts[4]

    def consumer(self, name: str) -> Contract:
        art = artifacts.load(name)
        addr = deploy(self.w3, art.abi, art.bytecode, self.owner, self.deployment.oracle)
        return self.w3.eth.contract(address=addr, abi=art.abi)

    def request(self, sender: str | None = None, data: bytes = INPUT, model_id: int | None = None,
                **kw: Any) -> int:
        receipt = self.chain.ok(self.oracle.functions.requestInference(model_id or self.model_id, data, 0),
                                sender or self.user, value=kw.pop("value", FEE), **kw)
        events = self.oracle.events.InferenceRequested().process_receipt(receipt, errors=DISCARD)
        return int(events[0]["args"]["requestId"])

    def quote(self, gas_limit: int, model_id: int | None = None) -> int:
        """Full price of a request with `gas_limit` callback gas at the SDK's default price (2x base fee)."""
        return self.client.quote(model_id or self.model_id, gas_limit)

    def consumer_request(self, consumer: Contract, gas_limit: int = 100_000, data: bytes = INPUT) -> int:
        receipt = self.chain.ok(consumer.functions.request(self.model_id, data, gas_limit), self.user,
                                value=self.quote(gas_limit))
        events = self.oracle.events.InferenceRequested().process_receipt(receipt, errors=DISCARD)
        return int(events[0]["args"]["requestId"])

    def submit(self, request_id: int, output: bytes = OUTPUT, operator: str | None = None, **kw: Any) -> TxReceipt:
        return self.chain.ok(self.oracle.functions.submitResult(request_id, output), operator or self.operator, **kw)

    def submitted_at(self, request_id: int) -> int:
        return self.client.get_request(request_id).submitted_at

    def finalize(self, request_id: int, output: bytes = OUTPUT, **kw: Any) -> TxReceipt:
        at = self.submitted_at(request_id) + WINDOW
        return self.chain.ok(self.oracle.functions.finalize(request_id, output), self.user,
                             at=max(at, self.chain.now() + 1), **kw)

    def solvency_gap(self, extra_accounts: list[str] | None = None) -> int:
        """ETH balance minus the ETH it owes; 0 when exactly solvent (>= 0 always). Token fees are escrowed in
        their token (see tests/invariants for solvency per asset)."""
        owed = 0
        for a in self.accounts + (extra_accounts or []):
            s = self.client.stake_of(a)
            owed += s.staked + s.pending + self.client.credits_of(a)
        escrow = 0
        nonce_ids = self._all_request_ids()
        for rid in nonce_ids:
            st = self.client.status_of(rid)
            if st.name in ("PENDING", "EXPIRED", "SUBMITTED", "FINALIZABLE"):
                view = self.client.get_request(rid)
                model = self.client.get_model(view.model_id)
                escrow += (0 if model.fee_in_token else model.fee) + self.client.callback_gas_charged(
                    view.callback_gas_limit) * self.client.callback_gas_price_of(rid)
        return self.chain.balance(self.deployment.oracle) - owed - escrow

    def _all_request_ids(self) -> list[int]:
        return [e.request_id for e in self.client.requested_events(0, self.w3.eth.block_number)]


@pytest.fixture(scope="session")
def deployed(session_w3: Web3, accounts: list[str]) -> tuple[Deployment, int]:
    # No dispute game here: these tests pin the one-transaction rules (a model over the cap is refused).
    # Assignment off: these tests race two operators on purpose; test_assignment.py deploys with it on.
    params = DeployParams(challenge_window=WINDOW, request_timeout=TIMEOUT, exclusive_period=0,
                          unbonding_period=UNBONDING, min_bond_ratio=4, max_callback_gas=1_000_000,
                          dispute_game=False)
    dep = deploy_system(session_w3, accounts[0], params)
    client = OracleClient(session_w3, dep.oracle)
    spec = ModelSpec(onnx_hash=b"\x11" * 32, fee=FEE, bond=BOND, input_length=64, output_length=32,
                     mode=Mode.ATTESTED, uri="file:///models/test.onnx")
    model_id = client.register_model(accounts[0], spec)
    digits = model_entry("digits")
    exact = ModelSpec(onnx_hash=bytes.fromhex(digits["onnx_keccak256"][2:]), fee=FEE, bond=BOND,
                      input_length=64, output_length=1, mode=Mode.EXACT, uri="file:///models/digits.onnx",
                      program_commitment=bytes.fromhex(digits["program_commitment"][2:]))
    exact_id = client.register_model(accounts[0], exact, program_bytes("digits"))
    assert exact_id == model_id + 1
    for op in accounts[1:3]:
        client.stake(op, 10**18)
    return dep, model_id


@pytest.fixture
def system(deployed: tuple[Deployment, int], w3: Web3, accounts: list[str]) -> Iterator[System]:
    dep, model_id = deployed
    client = OracleClient(w3, dep.oracle)
    yield System(w3, Chain(w3), dep, client, client.contract, accounts, model_id)
