"""Executable reference model of the oracle's money and lifecycle (protocol.md §3, §6, §8).

The fuzzer asks this model, before every transaction, what must happen: either the custom error the
contract has to revert with, or the exact effects (stakes, credits, escrow, ETH balances, statuses, the
callback's outcome). After the transaction the machine applies the effects and compares the whole chain
state with the model. The model is written from the spec and the interfaces' NatSpec, not from the
implementation; where several checks fail at once it follows the implementation's check order (the
spec fixes the errors, not their precedence).

Callbacks never appear in the money arithmetic: the model has no input for "did the callback succeed" when
it computes balances, so any balance that depends on the callback's outcome diverges from the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from eth_utils import keccak

from tests.invariants.harness import (
    EXCLUSIVE,
    MAX_ASSIGNMENT_WEIGHT,
    MAX_CALLBACK_GAS,
    MIN_OPERATOR_STAKE,
    TIMEOUT,
    UNBONDING,
    WINDOW,
)


def stored_hash(output: bytes) -> bytes:
    """What the oracle keeps of an attested output (`getRequest`'s view): keccak256's first 24 bytes, padded."""
    return keccak(output)[:24] + bytes(8)


#: Callback gas prices are committed in whole units of this many wei (`GAS_PRICE_UNIT`).
GAS_PRICE_UNIT = 10**6
#: Draws of the assignment's rejection sampling (`ASSIGN_DRAWS`).
ASSIGN_DRAWS = 4


def callback_gas_charged(cb_gas: int) -> int:
    """Gas units a request pays its callback deposit for (`callbackGasCharged`)."""
    return 0 if cb_gas == 0 else cb_gas + cb_gas // 63 + 25_000


class St(IntEnum):
    """Mirror of `IInferenceOracle.Status`."""

    NONE = 0
    PENDING = 1
    EXPIRED = 2
    REFUNDED = 3
    SUBMITTED = 4
    FINALIZABLE = 5
    FINALIZED = 6
    FRAUD_PROVEN = 7


#: Forward-only lifecycle (protocol.md §3): the direct moves of each status ...
_STEPS: dict[St, frozenset[St]] = {
    St.PENDING: frozenset({St.EXPIRED, St.SUBMITTED}),
    St.EXPIRED: frozenset({St.REFUNDED}),
    St.REFUNDED: frozenset(),
    St.SUBMITTED: frozenset({St.FINALIZABLE, St.FRAUD_PROVEN}),
    St.FINALIZABLE: frozenset({St.FINALIZED}),
    St.FINALIZED: frozenset(),
    St.FRAUD_PROVEN: frozenset(),
}


def _closure(s: St) -> frozenset[St]:
    seen, todo = {s}, [s]
    while todo:
        for nxt in _STEPS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)


#: ... and every status reachable from each (one step may cover several moves, e.g. expire and refund).
FORWARD: dict[St, frozenset[St]] = {s: _closure(s) for s in _STEPS}
OPEN_ATTESTATION = frozenset({St.SUBMITTED, St.FINALIZABLE})
ESCROWED = frozenset({St.PENDING, St.EXPIRED, St.SUBMITTED, St.FINALIZABLE})


@dataclass(frozen=True)
class ModelM:
    model_id: int
    exact: bool
    fee: int
    bond: int
    input_length: int
    output_length: int
    retired: bool = False
    token: bool = False  # the fee is in the test ERC-20 (callback deposit and bond stay ETH)

    @property
    def eth_fee(self) -> int:
        """The part of the fee paid in ETH (msg.value, escrow, ETH credits)."""
        return 0 if self.token else self.fee


@dataclass
class Req:
    rid: int
    nonce: int
    requester: str  # msg.sender of requestInference: an EOA or a consumer contract
    kind: str | None  # consumer contract kind, None for an EOA
    model: ModelM
    input: bytes
    correct: bytes  # what an honest operator posts (EXACT: the reference output)
    cb_gas: int
    requested_at: int
    operator: str | None = None
    submitted_at: int = 0
    assignee: str | None = None  # alone may answer until requested_at + EXCLUSIVE
    output: bytes | None = None
    finalized: bool = False
    fraud: bool = False
    refunded: bool = False
    callback_ok: bool = False
    price_units: int = 0  # committed callback gas price, in GAS_PRICE_UNIT
    settlements: int = 0  # fee payouts (operator credit, challenger reward or refund): must end at exactly 1

    def status(self, now: int) -> St:
        if self.submitted_at == 0:
            if self.refunded:
                return St.REFUNDED
            return St.PENDING if now < self.requested_at + TIMEOUT else St.EXPIRED
        if self.fraud:
            return St.FRAUD_PROVEN
        if self.finalized:
            return St.FINALIZED
        return St.SUBMITTED if now < self.submitted_at + WINDOW else St.FINALIZABLE

    @property
    def attested_hash(self) -> bytes:
        if self.output is None:
            return b"\x00" * 32
        return stored_hash(self.correct if self.fraud else self.output)

    @property
    def deposit(self) -> int:
        return callback_gas_charged(self.cb_gas) * self.price_units * GAS_PRICE_UNIT

    @property
    def callback_runs(self) -> bool:
        """The fuzzer's chain has base fee 0: every committed price (0 included) is at least the base fee."""
        return self.cb_gas != 0 and self.kind is not None

    @property
    def is_wrong(self) -> bool:
        return self.output is not None and self.output != self.correct


@dataclass
class OpM:
    staked: int = 0
    locked: int = 0
    pending: int = 0
    withdrawable_at: int = 0


def callback_succeeds(kind: str | None, cb_gas: int) -> bool | None:
    """Predicted outcome of the consumer callback (protocol.md §3), or None where it depends on gas the model
    does not track. Only a contract with a non-zero gas limit is called. The recording and reentrant consumers
    need well under 200k; at 10k they usually run out, but not when their slots are already warm (a second
    callback in the same batch) or already hold the values written, so 10k is not predicted."""
    if kind is None or cb_gas == 0:
        return False
    if kind in ("RecordingConsumer", "ReentrantConsumer"):
        return True if cb_gas >= 200_000 else None
    return False  # RevertingConsumer always reverts, GasHungryConsumer always runs out of gas


def callback_attempted(kind: str | None, cb_gas: int) -> bool:
    return kind is not None and cb_gas > 0


@dataclass
class ProtocolModel:
    models: dict[int, ModelM]
    ops: dict[str, OpM]
    eth: dict[str, int]  # ETH balance of every tracked address (gas price is 0)
    oracle: str
    burn: str
    credits: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)  # test-token balance of every tracked address
    token_credits: dict[str, int] = field(default_factory=dict)
    reqs: list[Req] = field(default_factory=list)
    by_id: dict[int, Req] = field(default_factory=dict)
    nonce: int = 0
    forced: int = 0
    burned: int = 0
    deposits: dict[str, int] = field(default_factory=dict)  # ETH each operator put into stake
    slashed: dict[str, int] = field(default_factory=dict)
    roster: list[str] = field(default_factory=list)  # listed operators, in the contract's order
    weight_cap: int = 0  # the largest draw weight, min(stake, MAX_ASSIGNMENT_WEIGHT), ever reached

    # ------------------------------------------------------------ assignment
    def assign(self, rid: int, bond: int, prevrandao: int) -> str | None:
        """The assignee the oracle draws (`_assign`): rejection sampling over the roster by free stake (a stake
        at or above ``weight_cap`` is always accepted: weights are capped at MAX_ASSIGNMENT_WEIGHT)."""
        if EXCLUSIVE == 0 or not self.roster:
            return None
        seed = int.from_bytes(keccak(prevrandao.to_bytes(32, "big") + rid.to_bytes(32, "big")), "big")
        for _ in range(ASSIGN_DRAWS):
            op = self.roster[seed % len(self.roster)]
            s = self.ops[op]
            free = s.staked - s.locked
            if free >= bond and free > (seed >> 128) % self.weight_cap:
                return op
            seed = int.from_bytes(keccak(seed.to_bytes(32, "big")), "big")
        return None

    # ------------------------------------------------------------ requests
    def check_request(self, model_id: int, data: bytes, cb_gas: int, value: int) -> str | None:
        m = self.models.get(model_id)
        if m is None:
            return "UnknownModel"
        if m.retired:
            return "ModelIsRetired"
        if value != m.eth_fee:
            per_unit = callback_gas_charged(cb_gas) * GAS_PRICE_UNIT
            if value < m.eth_fee or per_unit == 0 or (value - m.eth_fee) % per_unit != 0:
                return "IncorrectFee"
            if (value - m.eth_fee) // per_unit >= 2**24:
                return "CallbackGasPriceTooHigh"
        if len(data) != m.input_length:
            return "InputLengthMismatch"
        if cb_gas > MAX_CALLBACK_GAS:
            return "CallbackGasTooHigh"
        return None

    def apply_request(self, rid: int, payer: str, requester: str, kind: str | None, model_id: int, data: bytes,
                      correct: bytes, cb_gas: int, now: int, value: int | None = None,
                      assignee: str | None = None) -> Req:
        m = self.models[model_id]
        self.nonce += 1
        req = Req(rid, self.nonce, requester, kind, m, data, correct, cb_gas, now, assignee=assignee)
        if value is not None and value != m.eth_fee:
            req.price_units = (value - m.eth_fee) // (callback_gas_charged(cb_gas) * GAS_PRICE_UNIT)
        self.reqs.append(req)
        self.by_id[rid] = req
        self._move(payer, self.oracle, m.eth_fee + req.deposit)
        if m.token:  # pulled from the requester (msg.sender) with transferFrom
            self.tokens[requester] -= m.fee
            self.tokens[self.oracle] += m.fee
        return req

    # ------------------------------------------------------------ submissions
    def check_submit(self, req: Req | None, op: str, output: bytes, now: int) -> str | None:
        if req is not None and req.submitted_at != 0:
            return "AlreadySubmitted"
        return self._check_submit_inner(req, op, output, now)

    def _check_submit_inner(self, req: Req | None, op: str, output: bytes, now: int) -> str | None:
        if req is None:
            return "UnknownRequest"
        if now >= req.requested_at + TIMEOUT:
            return "RequestExpired"
        if self.reserved(req, op, now):
            return "NotAssigned"
        if len(output) != req.model.output_length:
            return "OutputLengthMismatch"
        s = self.ops.setdefault(op, OpM())
        if s.staked - s.locked < req.model.bond:
            return "InsufficientFreeStake"
        return None

    @staticmethod
    def reserved(req: Req, op: str, now: int) -> bool:
        """Still in the exclusive period of an assignee other than `op`."""
        return req.assignee is not None and req.assignee != op and now < req.requested_at + EXCLUSIVE

    def apply_submit(self, req: Req, op: str, output: bytes, now: int) -> None:
        self.ops[op].locked += req.model.bond
        req.operator, req.submitted_at, req.output = op, now, output

    def plan_submit_batch(self, items: list[tuple[Req | None, bytes]], op: str, now: int
                          ) -> tuple[str | None, list[tuple[Req, bytes]]]:
        """Simulates `submitResults`: skipped items, then the first reverting one sinks the batch."""
        done: list[tuple[Req, bytes]] = []
        saved_locked = self.ops.setdefault(op, OpM()).locked
        seen: set[int] = set()
        try:
            for req, output in items:
                if (req is None or req.submitted_at != 0 or req.refunded or req.rid in seen
                        or now >= req.requested_at + TIMEOUT or self.reserved(req, op, now)):
                    continue
                err = self._check_submit_inner(req, op, output, now)
                if err is not None:
                    return err, []
                self.ops[op].locked += req.model.bond  # later items see the reduced free stake
                seen.add(req.rid)
                done.append((req, output))
            return None, done
        finally:
            self.ops[op].locked = saved_locked

    # ------------------------------------------------------------ settlement
    def check_finalize(self, req: Req | None, output: bytes, now: int, starved: bool) -> str | None:
        if req is None:
            return "UnknownRequest"
        if req.submitted_at == 0:
            return "NotSubmitted"
        if req.finalized:
            return "AlreadyFinalized"
        if now < req.submitted_at + WINDOW:
            return "ChallengeWindowOpen"
        if stored_hash(output) != req.attested_hash:
            return "OutputMismatch"
        if starved and callback_attempted(req.kind, req.cb_gas) and req.cb_gas >= 200_000:
            return "InsufficientGasForCallback"
        return None

    def _pay_deposit(self, req: Req, settler: str) -> None:
        """The callback deposit pays the settler when the callback is called, else goes back to the requester."""
        if req.deposit:
            self._credit(settler if req.callback_runs else req.requester, req.deposit)

    def apply_finalize(self, req: Req, observed_ok: bool, settler: str) -> bool | None:
        """Settles ``req``; returns the predicted callback outcome (the observed one is recorded: it is
        only ever a flag, never an input to the money arithmetic)."""
        assert req.operator is not None
        self.ops[req.operator].locked -= req.model.bond
        self._credit_fee(req.operator, req.model)
        self._pay_deposit(req, settler)
        req.finalized = True
        req.settlements += 1
        req.callback_ok = observed_ok
        return callback_succeeds(req.kind, req.cb_gas)

    def plan_finalize_batch(self, items: list[tuple[Req | None, bytes]], now: int
                            ) -> tuple[str | None, list[Req]]:
        done: list[Req] = []
        seen: set[int] = set()
        for req, output in items:
            if (req is None or req.submitted_at == 0 or req.finalized or req.rid in seen
                    or now < req.submitted_at + WINDOW):
                continue
            if stored_hash(output) != req.attested_hash:
                continue  # skipped on-chain, like every other item that cannot be finalized
            seen.add(req.rid)
            done.append(req)
        return None, done

    def check_challenge(self, req: Req | None, data: bytes, now: int) -> str | None:
        if req is None:
            return "UnknownRequest"
        if req.submitted_at == 0:
            return "NotSubmitted"
        if req.finalized:
            return "AlreadyFinalized"
        if now >= req.submitted_at + WINDOW:
            return "ChallengeWindowClosed"
        if data != req.input:
            return "InputMismatch"
        if not req.model.exact:
            return "NotChallengeable"
        if not req.is_wrong:
            return "ResultIsCorrect"
        return None

    def apply_challenge(self, req: Req, challenger: str, observed_ok: bool) -> tuple[int, int, bool | None]:
        assert req.operator is not None
        bond, fee = req.model.bond, req.model.fee
        s = self.ops[req.operator]
        s.locked -= bond
        s.staked -= bond
        self.slashed[req.operator] = self.slashed.get(req.operator, 0) + bond
        burned = bond // 2
        reward = bond - burned + (0 if req.model.token else fee)  # the event's reward: the ETH part
        self._credit(challenger, bond - burned)
        self._credit_fee(challenger, req.model)
        self._pay_deposit(req, challenger)
        self._move(self.oracle, self.burn, burned)
        self.burned += burned
        req.finalized = req.fraud = True
        req.settlements += 1
        req.callback_ok = observed_ok
        return reward, burned, callback_succeeds(req.kind, req.cb_gas)

    def check_refund(self, req: Req | None, now: int) -> str | None:
        if req is None:
            return "UnknownRequest"
        if req.submitted_at != 0:
            return "AlreadySubmitted"
        if req.refunded:
            return "AlreadyRefunded"
        if now < req.requested_at + TIMEOUT:
            return "RequestNotExpired"
        return None

    def apply_refund(self, req: Req) -> None:
        req.refunded = True
        req.settlements += 1
        self._credit_fee(req.requester, req.model)
        if req.deposit:
            self._credit(req.requester, req.deposit)

    # ------------------------------------------------------------ money out
    def check_withdraw(self, account: str, to: str, rejects: bool) -> str | None:
        if self.credits.get(account, 0) == 0:
            return "NoCredits"
        if rejects:
            return "TransferFailed"
        return None

    def apply_withdraw(self, account: str, to: str) -> int:
        amount = self.credits.pop(account)
        self._move(self.oracle, to, amount)
        return amount

    def check_withdraw_token(self, account: str) -> str | None:
        return "NoCredits" if self.token_credits.get(account, 0) == 0 else None

    def apply_withdraw_token(self, account: str, to: str) -> int:
        amount = self.token_credits.pop(account)
        self.tokens[self.oracle] -= amount
        self.tokens[to] = self.tokens.get(to, 0) + amount
        return amount

    # ------------------------------------------------------------ staking
    def check_stake(self, value: int) -> str | None:
        return "ZeroAmount" if value == 0 else None

    def apply_stake(self, op: str, value: int) -> None:
        s = self.ops.setdefault(op, OpM())
        s.staked += value
        self.weight_cap = max(self.weight_cap, min(s.staked, MAX_ASSIGNMENT_WEIGHT))
        if op not in self.roster and s.staked >= MIN_OPERATOR_STAKE:
            self.roster.append(op)
        self.deposits[op] = self.deposits.get(op, 0) + value
        self._move(op, self.oracle, value)

    def check_unstake(self, op: str, amount: int) -> str | None:
        s = self.ops.setdefault(op, OpM())
        if amount == 0:
            return "ZeroAmount"
        if amount > s.staked - s.locked:
            return "InsufficientFreeStake"
        return None

    def apply_unstake(self, op: str, amount: int, now: int) -> None:
        s = self.ops[op]
        s.staked -= amount
        if op in self.roster and s.staked < MIN_OPERATOR_STAKE:  # swap-and-pop
            i = self.roster.index(op)
            self.roster[i] = self.roster[-1]
            self.roster.pop()
        s.pending += amount
        s.withdrawable_at = now + UNBONDING

    def check_withdraw_stake(self, op: str, now: int, rejects: bool) -> str | None:
        s = self.ops.setdefault(op, OpM())
        if s.pending == 0:
            return "NothingToWithdraw"
        if now < s.withdrawable_at:
            return "UnbondingNotOver"
        if rejects:
            return "TransferFailed"
        return None

    def apply_withdraw_stake(self, op: str, to: str) -> int:
        s = self.ops[op]
        amount = s.pending
        s.pending, s.withdrawable_at = 0, 0
        self.deposits[op] = self.deposits.get(op, 0) - amount
        self._move(self.oracle, to, amount)
        return amount

    def apply_force(self, sender: str, value: int) -> None:
        self.forced += value
        self._move(sender, self.oracle, value)

    # ------------------------------------------------------------ derived quantities
    def escrow(self, now: int) -> int:
        return sum(r.model.eth_fee + r.deposit for r in self.reqs if r.status(now) in ESCROWED)

    def token_escrow(self, now: int) -> int:
        return sum(r.model.fee for r in self.reqs if r.model.token and r.status(now) in ESCROWED)

    def owed(self, now: int) -> int:
        return (sum(s.staked + s.pending for s in self.ops.values()) + self.escrow(now)
                + sum(self.credits.values()))

    def _credit(self, account: str, amount: int) -> None:
        self.credits[account] = self.credits.get(account, 0) + amount

    def _credit_fee(self, account: str, model: ModelM) -> None:
        """A fee payout, in the fee's asset."""
        if model.token:
            self.token_credits[account] = self.token_credits.get(account, 0) + model.fee
        else:
            self._credit(account, model.fee)

    def _move(self, src: str, dst: str, amount: int) -> None:
        if src in self.eth:
            self.eth[src] -= amount
        if dst in self.eth:
            self.eth[dst] += amount
