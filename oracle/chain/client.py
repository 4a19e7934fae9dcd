"""Typed wrapper around the deployed `InferenceOracle` (registry, staking and lifecycle in one contract).

Shared by the worker, the challenger, the SDK, scripts and tests: the ABI comes from the shipped
artifacts, reverts come back as :class:`oracle.errors.ContractRevert` by name. Each transaction has a
``*_fn`` builder (a web3 ``ContractFunction``) for callers that sign and send themselves (the worker's
submitter), and a convenience method that sends with a :data:`oracle.chain.tx.Signer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_utils.abi import get_abi_output_types
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.contract.utils import format_contract_call_return_data_curried
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxReceipt

from oracle.chain import artifacts, erc20
from oracle.chain.plans import ensure_plan
from oracle.chain.reverts import from_web3_error
from oracle.chain.tx import Signer, send
from oracle.chain.types import (
    InferenceRequested,
    Mode,
    Model,
    ModelSpec,
    RequestView,
    ResultSubmitted,
    StakeInfo,
    Status,
)

#: Largest chunk of program bytes per `writeProgramChunk` transaction (DataChunks.MAX_CHUNK).
MAX_CHUNK = 24_575


class OracleClient:
    """Client for one `InferenceOracle` deployment."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        # decode_tuples: struct results come back as named tuples, read by field name (types.*.from_struct)
        self.contract: Contract = w3.eth.contract(address=self.address, abi=artifacts.oracle_abi(),
                                                  decode_tuples=True)

    # ------------------------------------------------------------- calls
    def _call(self, fn: ContractFunction, block: Any = "latest") -> Any:
        try:
            return fn.call(block_identifier=block)
        except ContractLogicError as exc:
            raise from_web3_error(exc) from exc

    def parameters(self) -> dict[str, int]:
        c = self.contract.functions
        return {
            "challenge_window": self._call(c.CHALLENGE_WINDOW()),
            "request_timeout": self._call(c.REQUEST_TIMEOUT()),
            "exclusive_period": self._call(c.EXCLUSIVE_PERIOD()),
            "unbonding_period": self._call(c.UNBONDING_PERIOD()),
            "min_bond_ratio": self._call(c.MIN_BOND_RATIO()),
            "max_callback_gas": self._call(c.MAX_CALLBACK_GAS()),
        }

    def verifier_address(self) -> str:
        return str(self._call(self.contract.functions.VERIFIER()))

    def get_model(self, model_id: int) -> Model:
        return Model.from_struct(model_id, self._call(self.contract.functions.getModel(model_id)))

    def model_count(self) -> int:
        return int(self._call(self.contract.functions.modelCount()))

    def proof_gas_bound(self, model_id: int) -> tuple[int, int]:
        """(bound on a challenge's gas limit without callback, largest callback gas a request may ask for)."""
        bound, cap = self._call(self.contract.functions.proofGasBound(model_id))
        return int(bound), int(cap)

    def program_chunks(self, model_id: int) -> list[str]:
        return list(self._call(self.contract.functions.programChunks(model_id)))

    def status_of(self, request_id: int, block: Any = "latest") -> Status:
        return Status(self._call(self.contract.functions.statusOf(request_id), block))

    def get_request(self, request_id: int, block: Any = "latest") -> RequestView:
        return RequestView.from_struct(request_id, self._call(self.contract.functions.getRequest(request_id), block))

    def decode_request(self, request_id: int, return_data: bytes) -> RequestView:
        """The :class:`RequestView` in the return data of an ``eth_call`` of ``getRequest`` made elsewhere (a
        JSON-RPC batch), decoded by web3 as :meth:`get_request` decodes it."""
        fn_abi = self.contract.get_function_by_name("getRequest").abi
        decoded = format_contract_call_return_data_curried(
            self.w3, True, fn_abi, "getRequest", (), get_abi_output_types(fn_abi), return_data)
        return RequestView.from_struct(request_id, decoded)

    def stake_of(self, operator: str) -> StakeInfo:
        return StakeInfo.from_struct(self._call(self.contract.functions.stakeOf(Web3.to_checksum_address(operator))))

    def min_operator_stake(self) -> int:
        """Stake an operator needs to be listed for assignment."""
        return int(self._call(self.contract.functions.MIN_OPERATOR_STAKE()))

    def max_assignment_weight(self) -> int:
        """Free stake above this draws no more assignment weight."""
        return int(self._call(self.contract.functions.maxAssignmentWeight()))

    def credits_of(self, account: str) -> int:
        return int(self._call(self.contract.functions.creditsOf(Web3.to_checksum_address(account))))

    def token_credits_of(self, account: str, token: str) -> int:
        """Withdrawable credits of ``account`` in the fee token ``token``."""
        fn = self.contract.functions.tokenCreditsOf(Web3.to_checksum_address(account), Web3.to_checksum_address(token))
        return int(self._call(fn))

    def is_attested_output(self, request_id: int, output: bytes) -> bool:
        return bool(self._call(self.contract.functions.isAttestedOutput(request_id, output)))

    @staticmethod
    def compute_request_id(nonce: int, data: bytes) -> int:
        """Mirror of the contract's id scheme (see `IInferenceOracle`)."""
        from eth_abi.abi import encode

        digest = keccak(encode(["uint64", "bytes32"], [nonce, keccak(data)]))
        return (nonce << 192) | (int.from_bytes(digest, "big") & ((1 << 192) - 1))

    # ------------------------------------------------------------- transaction builders
    def request_fn(self, model_id: int, data: bytes, callback_gas: int = 0) -> ContractFunction:
        return self.contract.functions.requestInference(model_id, data, callback_gas)

    def submit_fn(self, request_id: int, output: bytes) -> ContractFunction:
        return self.contract.functions.submitResult(request_id, output)

    def submit_batch_fn(self, request_ids: Sequence[int], outputs: Sequence[bytes]) -> ContractFunction:
        return self.contract.functions.submitResults(list(request_ids), list(outputs))

    def finalize_fn(self, request_id: int, output: bytes) -> ContractFunction:
        return self.contract.functions.finalize(request_id, output)

    def finalize_batch_fn(self, request_ids: Sequence[int], outputs: Sequence[bytes]) -> ContractFunction:
        return self.contract.functions.finalizeBatch(list(request_ids), list(outputs))

    def challenge_fn(self, request_id: int, data: bytes) -> ContractFunction:
        return self.contract.functions.challenge(request_id, data)

    def refund_fn(self, request_id: int) -> ContractFunction:
        return self.contract.functions.refund(request_id)

    def withdraw_fn(self, to: str) -> ContractFunction:
        return self.contract.functions.withdraw(Web3.to_checksum_address(to))

    def withdraw_token_fn(self, token: str, to: str) -> ContractFunction:
        return self.contract.functions.withdrawToken(Web3.to_checksum_address(token), Web3.to_checksum_address(to))

    # ------------------------------------------------------------- convenience senders
    def callback_gas_charged(self, callback_gas: int) -> int:
        """Gas units a request with ``callback_gas`` pays for (mirror of ``callbackGasCharged``)."""
        if callback_gas == 0:
            return 0
        return callback_gas + callback_gas // 63 + 25_000

    def default_callback_gas_price(self) -> int:
        """Twice the latest base fee: still at or above the base fee after ~6 full blocks of EIP-1559 rises."""
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        return 2 * base

    def quote(self, model_id: int, callback_gas: int = 0, callback_gas_price: int | None = None) -> int:
        """The ``msg.value`` of a request: the fee when it is in ETH, plus callback gas at ``callback_gas_price``
        (default twice the base fee). A token fee is not included: see :meth:`price`."""
        return self.price(model_id, callback_gas, callback_gas_price)[2]

    def price(self, model_id: int, callback_gas: int = 0,
              callback_gas_price: int | None = None) -> tuple[str, int, int]:
        """Full price of a request: (fee token, the zero address for ETH; fee; exact ``msg.value``)."""
        if callback_gas_price is None:
            callback_gas_price = self.default_callback_gas_price() if callback_gas else 0
        token, fee, value = self._call(self.contract.functions.priceOf(model_id, callback_gas, callback_gas_price))
        return str(token), int(fee), int(value)

    def callback_gas_price_of(self, request_id: int) -> int:
        return int(self.contract.functions.callbackGasPriceOf(request_id).call())

    def request(self, signer: Signer, model_id: int, data: bytes, callback_gas: int = 0,
                fee: int | None = None, callback_gas_price: int | None = None,
                approve: bool = True) -> tuple[int, TxReceipt]:
        """Requests an inference; returns (request id, receipt).

        Pays ``fee`` (default: the model's fee) plus the callback deposit: ``callbackGasCharged(callback_gas)``
        at ``callback_gas_price`` wei per gas (default twice the latest base fee). The callback only runs if
        that price is at least the base fee at settlement. A model whose fee is in an ERC-20 takes it with
        ``transferFrom``: with ``approve`` (default) the signer approves the oracle for the fee first when its
        allowance is short; ``msg.value`` is then only the callback deposit (callback gas is paid in ETH).
        """
        model = self.get_model(model_id)
        if fee is None:
            fee = model.fee
        if callback_gas_price is None:
            callback_gas_price = self.default_callback_gas_price() if callback_gas else 0
        value = self.callback_gas_charged(callback_gas) * callback_gas_price
        if model.fee_in_token:
            if approve:
                erc20.ensure_allowance(self.w3, model.fee_token, signer, self.address, model.fee)
        else:
            value += fee
        receipt = send(self.w3, self.request_fn(model_id, data, callback_gas), signer, value=value)
        events = self.contract.events.InferenceRequested().process_receipt(receipt, errors=DISCARD)
        return int(events[0]["args"]["requestId"]), receipt

    def submit(self, signer: Signer, request_id: int, output: bytes) -> TxReceipt:
        return send(self.w3, self.submit_fn(request_id, output), signer)

    def finalize(self, signer: Signer, request_id: int, output: bytes, gas: int | None = None) -> TxReceipt:
        return send(self.w3, self.finalize_fn(request_id, output), signer, gas=gas)

    def challenge(self, signer: Signer, request_id: int, data: bytes, gas: int | None = None) -> TxReceipt:
        return send(self.w3, self.challenge_fn(request_id, data), signer, gas=gas)

    def refund(self, signer: Signer, request_id: int) -> TxReceipt:
        return send(self.w3, self.refund_fn(request_id), signer)

    def withdraw(self, signer: Signer, to: str) -> TxReceipt:
        return send(self.w3, self.withdraw_fn(to), signer)

    def withdraw_token(self, signer: Signer, token: str, to: str) -> TxReceipt:
        return send(self.w3, self.withdraw_token_fn(token, to), signer)

    def stake(self, signer: Signer, amount: int) -> TxReceipt:
        return send(self.w3, self.contract.functions.stake(), signer, value=amount)

    def request_unstake(self, signer: Signer, amount: int) -> TxReceipt:
        return send(self.w3, self.contract.functions.requestUnstake(amount), signer)

    def withdraw_stake(self, signer: Signer, to: str) -> TxReceipt:
        return send(self.w3, self.contract.functions.withdrawStake(Web3.to_checksum_address(to)), signer)

    def retire_model(self, signer: Signer, model_id: int) -> TxReceipt:
        return send(self.w3, self.contract.functions.retireModel(model_id), signer)

    def write_program(self, signer: Signer, program: bytes) -> list[str]:
        """Stores program bytes on-chain as data chunks; returns the chunk addresses in order."""
        chunks: list[str] = []
        for start in range(0, len(program), MAX_CHUNK):
            piece = program[start:start + MAX_CHUNK]
            receipt = send(self.w3, self.contract.functions.writeProgramChunk(piece), signer)
            ev = self.contract.events.ProgramChunkWritten().process_receipt(receipt, errors=DISCARD)
            chunks.append(ev[0]["args"]["chunk"])
        return chunks

    def register_model(self, signer: Signer, spec: ModelSpec, program: bytes | None = None) -> int:
        """Registers a model version (writing its program chunks first for EXACT, and fixing its dispute game
        tile plan when it is game-provable: :func:`oracle.chain.plans.ensure_plan`); returns its id."""
        chunks: list[str] = []
        if spec.mode is Mode.EXACT:
            if program is None:
                raise ValueError("an EXACT model needs its program bytes (oracle model compile ...)")
            chunks = self.write_program(signer, program)
            ensure_plan(self.w3, self.contract, signer, chunks, program)
        receipt = send(self.w3, self.contract.functions.registerModel(spec.as_tuple(), chunks), signer)
        ev = self.contract.events.ModelRegistered().process_receipt(receipt, errors=DISCARD)
        return int(ev[0]["args"]["modelId"])

    # ------------------------------------------------------------- events
    def requested_events(self, from_block: int, to_block: int) -> list[InferenceRequested]:
        logs = self.contract.events.InferenceRequested().get_logs(from_block=from_block, to_block=to_block)
        return [
            InferenceRequested(
                request_id=int(log["args"]["requestId"]), model_id=int(log["args"]["modelId"]),
                requester=log["args"]["requester"], fee=int(log["args"]["fee"]),
                callback_gas_limit=int(log["args"]["callbackGasLimit"]), input=bytes(log["args"]["input"]),
                block_number=log["blockNumber"], block_hash=bytes(log["blockHash"]),
                tx_hash=bytes(log["transactionHash"]), log_index=log["logIndex"],
                assignee=str(log["args"]["assignee"]),
            )
            for log in logs
        ]

    def submitted_events(self, from_block: int, to_block: int) -> list[ResultSubmitted]:
        logs = self.contract.events.ResultSubmitted().get_logs(from_block=from_block, to_block=to_block)
        return [
            ResultSubmitted(
                request_id=int(log["args"]["requestId"]), operator=log["args"]["operator"],
                output=bytes(log["args"]["output"]),
                block_number=log["blockNumber"], block_hash=bytes(log["blockHash"]),
                tx_hash=bytes(log["transactionHash"]), log_index=log["logIndex"],
            )
            for log in logs
        ]

    def events_in(self, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
        """Decoded `name` events of this contract in a receipt (args only)."""
        return [dict(e["args"]) for e in getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD)]
