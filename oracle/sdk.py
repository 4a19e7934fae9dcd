"""Python SDK for off-chain requesters: request an inference, wait for its final result.

    from oracle.sdk import OracleSDK
    sdk = OracleSDK.connect("http://127.0.0.1:8545", deployment="deployment.json", signer=my_account)
    sdk.price(model_id=1)                                  # Price(token, fee, value): token None = ETH
    handle = sdk.request(model_id=1, data=pixels)          # pays the model's fee (and callback gas, if asked);
                                                           # an ERC-20 fee: approves the oracle for it first
    result = sdk.wait_final(handle.request_id, timeout=600)  # after the challenge window
    result.output, result.mode, result.operator, result.fraud_proven

A result is *final* when it was finalized after its challenge window or corrected by a proven fraud (then
``output`` is the corrected output). Errors are typed: :class:`RequestExpired` (no answer before the
deadline; call :meth:`OracleSDK.refund_and_withdraw`), :class:`ResultTimeout` (still open when your timeout
ran out).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment
from oracle.chain.tx import Signer, address_of, send
from oracle.chain.types import Mode
from oracle.errors import OracleError
from oracle.lifecycle import Status, is_finalizable, is_refundable


class SDKError(OracleError):
    """Root of the SDK's errors."""


class RequestExpired(SDKError, RuntimeError):
    """No result arrived before the request deadline; ``refund_and_withdraw(request_id)`` returns the fee."""


class ResultTimeout(SDKError, TimeoutError):
    """The result was not final when the caller's timeout ran out; call ``wait_final`` again later."""


@dataclass(frozen=True)
class Price:
    """What a request costs: ``fee`` in ``token`` (None: ETH) and the exact ETH ``value`` to send (the fee when
    it is in ETH, plus the callback deposit, always in ETH)."""

    token: str | None
    fee: int
    value: int


@dataclass(frozen=True)
class RequestHandle:
    request_id: int
    model_id: int
    fee: int
    tx_hash: str
    fee_token: str | None = None  # None: the fee was paid in ETH


@dataclass(frozen=True)
class FinalResult:
    request_id: int
    output: bytes
    status: Status
    mode: Mode
    operator: str  # the attesting operator (for a proven fraud: the one that was slashed)
    fraud_proven: bool


class OracleSDK:
    def __init__(self, client: OracleClient, signer: Signer, *, finalize_when_due: bool = True) -> None:
        self.client = client
        self.w3 = client.w3
        self.signer = signer
        #: finalize the request ourselves once the window is over (anyone may; operators usually do it)
        self.finalize_when_due = finalize_when_due

    @classmethod
    def connect(cls, rpc_url: str, *, signer: Signer, deployment: str | Path | None = None,
                oracle_address: str | None = None) -> OracleSDK:
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        if deployment is not None:
            oracle_address = Deployment.load(Path(deployment)).oracle
        if oracle_address is None:
            raise SDKError("pass deployment= (the JSON written by `oracle chain deploy`) or oracle_address=")
        return cls(OracleClient(w3, oracle_address), signer)

    def quote(self, model_id: int, callback_gas: int = 0, callback_gas_price: int | None = None) -> int:
        """The ETH a request sends, in wei: the model's fee when it is in ETH, plus the callback gas at the
        committed price (a token fee comes on top: see :meth:`price`)."""
        return self.client.quote(model_id, callback_gas, callback_gas_price)

    def price(self, model_id: int, callback_gas: int = 0, callback_gas_price: int | None = None) -> Price:
        """Full price of a request: the fee in its asset and the ETH value to send."""
        token, fee, value = self.client.price(model_id, callback_gas, callback_gas_price)
        return Price(None if int(token, 16) == 0 else token, fee, value)

    def credits(self, token: str | None = None) -> int:
        """This account's withdrawable credits in ETH (``token`` None) or in the ERC-20 ``token``."""
        me = address_of(self.signer)
        return self.client.credits_of(me) if token is None else self.client.token_credits_of(me, token)

    def withdraw(self, token: str | None = None) -> int:
        """Withdraws this account's credits in ETH (``token`` None) or in ``token`` to itself; returns the
        amount (0: nothing to withdraw, no transaction)."""
        me = address_of(self.signer)
        amount = self.credits(token)
        if amount:
            fn = self.client.withdraw_fn(me) if token is None else self.client.withdraw_token_fn(token, me)
            send(self.w3, fn, self.signer)
        return amount

    def request(self, model_id: int, data: bytes, callback_gas: int = 0,
                callback_gas_price: int | None = None) -> RequestHandle:
        model = self.client.get_model(model_id)
        if len(data) != model.input_length:
            raise SDKError(f"model {model_id} takes {model.input_length} input bytes, got {len(data)}; "
                           "encode it with oracle.profile.codec.encode_tensor")
        rid, receipt = self.client.request(self.signer, model_id, data, callback_gas, fee=model.fee,
                                           callback_gas_price=callback_gas_price)
        return RequestHandle(rid, model_id, model.fee, Web3.to_hex(receipt["transactionHash"]),
                             model.fee_token if model.fee_in_token else None)

    def status(self, request_id: int) -> Status:
        return self.client.status_of(request_id)

    def attested_output(self, request_id: int) -> bytes | None:
        """The output posted by the operator (not final before the window ends)."""
        logs = self.client.contract.events.ResultSubmitted().get_logs(
            from_block=0, argument_filters={"requestId": request_id})
        return bytes(logs[-1]["args"]["output"]) if logs else None

    def wait_final(self, request_id: int, timeout: float = 600.0, poll: float = 0.5) -> FinalResult:
        deadline = time.monotonic() + timeout
        while True:
            view = self.client.get_request(request_id)
            if view.status is Status.FRAUD_PROVEN:
                logs = self.client.contract.events.FraudProven().get_logs(
                    from_block=0, argument_filters={"requestId": request_id})
                return self._result(view.model_id, request_id, bytes(logs[-1]["args"]["correctOutput"]),
                                    view.status, view.operator, True)
            if view.status is Status.FINALIZED:
                output = self.attested_output(request_id)
                assert output is not None
                return self._result(view.model_id, request_id, output, view.status, view.operator, False)
            if is_finalizable(view.status) and self.finalize_when_due:
                output = self.attested_output(request_id)
                if output is not None:
                    try:
                        send(self.w3, self.client.finalize_fn(request_id, output), self.signer)
                    except OracleError:
                        pass  # someone else finalized first; the next loop sees it
                    continue
            if is_refundable(view.status):
                raise RequestExpired(f"request {request_id:#x} got no result before its deadline; "
                                     "call refund_and_withdraw() to get the fee back")
            if view.status is Status.REFUNDED:
                raise RequestExpired(f"request {request_id:#x} expired and was refunded")
            if time.monotonic() >= deadline:
                raise ResultTimeout(f"request {request_id:#x} is still {view.status.name} after {timeout}s")
            time.sleep(poll)

    def refund_and_withdraw(self, request_id: int) -> int:
        """Credits the fee of an expired request back, then withdraws all of this account's credits in the
        fee's asset (the fee and any earlier ones; for a token fee the ETH callback deposit too); returns the
        amount withdrawn in the fee's asset."""
        send(self.w3, self.client.refund_fn(request_id), self.signer)
        model = self.client.get_model(self.client.get_request(request_id).model_id)
        if not model.fee_in_token:
            return self.withdraw()
        self.withdraw()  # the callback deposit, if any
        return self.withdraw(model.fee_token)

    def _result(self, model_id: int, request_id: int, output: bytes, status: Status, operator: str,
                fraud: bool) -> FinalResult:
        mode = self.client.get_model(model_id).mode
        return FinalResult(request_id, output, status, mode, operator, fraud)
