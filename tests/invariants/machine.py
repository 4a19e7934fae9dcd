"""Stateful fuzzer: a hypothesis state machine driving the real contracts on anvil.

Actors: two honest operators and one poor one (never cheat), two dishonest operators (post wrong results,
sometimes correct ones, challenge themselves), two requester EOAs, four consumer contracts (recording,
reverting, gas-burning, reentrant), two challengers, a force-sender, a stranger. Models: an ATTESTED model,
the EXACT digits model with its on-chain program, and the same EXACT model with its fee in an ERC-20 (requested
by the EOAs, which approved the oracle); a retired and an unknown model id are exercised too.

Every rule asks ``ProtocolModel`` what must happen (a custom error by name, or exact effects and events),
sends one transaction at an explicit timestamp, and checks the receipt. After every step ``check_state``
reads the whole chain state in one batched RPC and checks protocol.md §8:

  1. solvency: oracle balance == Σ staked + Σ pending + escrowed fees + Σ credits + force-sent ETH, and per
     asset: the oracle's token balance == Σ token credits + escrowed token fees
  2. forward-only status per request; settled and called back at most once
  3. each fee paid exactly once (operator credit, challenger reward or refund), read from the events
  4. no slash without a proven fraud (Slashed is paired with FraudProven on a wrong output); honest
     operators' wealth never decreases
  5. locked stake == Σ bonds of open attestations <= staked
  6. callbacks never move money (the model has no callback input in its arithmetic; consumer balances,
     deliveries and reentrancy attempts are checked)

and compares every balance, stake, credit, status, output hash and callback flag with the model. At the end
of each example ``teardown`` settles and withdraws everything and checks that the oracle holds exactly the
force-sent ETH and that no wei was created or lost.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from eth_utils import keccak
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from oracle.chain.client import OracleClient
from tests.invariants.harness import (
    BURN_ADDRESS,
    GAS,
    GAS_BATCH,
    GAS_CHALLENGE,
    GAS_STARVED,
    MAX_ASSIGNMENT_WEIGHT,
    MIN_OPERATOR_STAKE,
    TIMEOUT,
    UNBONDING,
    WINDOW,
    FuzzChain,
    FuzzSystem,
    TxResult,
    encode_create,
    exact_reference,
)
from tests.invariants.model import (
    ESCROWED,
    FORWARD,
    GAS_PRICE_UNIT,
    OPEN_ATTESTATION,
    ModelM,
    OpM,
    ProtocolModel,
    Req,
    St,
    callback_gas_charged,
)

F = TypeVar("F", bound=Callable[..., Any])

ATT_INPUTS = [keccak(b"att-input-%d" % i) + keccak(b"att-pad-%d" % i) for i in range(6)]

T = TypeVar("T")


def weighted(*pairs: tuple[int, T]) -> st.SearchStrategy[T]:
    """Draws from ``(weight, value)`` pairs. Hypothesis favours the ends of integer ranges (and so the first
    and last entries of ``sampled_from``); scattering the drawn integer over the table makes the weights
    roughly hold, while shrinking still moves toward the first entry (draw 0)."""
    table = [v for w, v in pairs for _ in range(w)]
    return st.integers(0, 255).map(lambda x: table[(x * 157) % len(table)])


def one_of(*values: T) -> st.SearchStrategy[T]:
    return weighted(*((1, v) for v in values))


def chance(percent: int) -> st.SearchStrategy[bool]:
    return weighted((100 - percent, False), (percent, True))


#: Small draws: hypothesis caps the choices of one example (8 KiB), which would cut 100-step examples short.
picks = st.integers(0, 255)
GOOD, ANY, UNKNOWN = 0, 6, 7
#: Which request a rule acts on: mostly one in the state the rule wants (if any), sometimes any request,
#: sometimes an id that was never requested.
selectors = weighted((85, GOOD), (10, ANY), (5, UNKNOWN))
CB_TOO_HIGH = 1_000_001  # MAX_CALLBACK_GAS + 1


class InvariantViolation(AssertionError):
    """The chain disagrees with the spec's model or breaks a protocol.md §8 invariant."""


def step(fn: F) -> F:
    """Counts executed steps and remembers failures (so teardown does not settle a broken state)."""

    @functools.wraps(fn)
    def wrapper(self: OracleMachine, *args: Any, **kwargs: Any) -> Any:
        self.sys.stats["steps"] = self.sys.stats.get("steps", 0) + 1
        self.sys.stats["rule:" + fn.__name__] = self.sys.stats.get("rule:" + fn.__name__, 0) + 1
        self.rule_counts[fn.__name__] += 1
        self.current_rule = fn.__name__
        try:
            return fn(self, *args, **kwargs)
        except BaseException as exc:
            self.note_failure(exc)
            raise

    return wrapper  # type: ignore[return-value]


def words(hexdata: str) -> list[int]:
    raw = bytes.fromhex(hexdata[2:])
    return [int.from_bytes(raw[i:i + 32], "big") for i in range(0, len(raw), 32)]


def dynamic_bytes(hexdata: str) -> bytes:
    """The single ``bytes`` return value of a call."""
    raw = bytes.fromhex(hexdata[2:])
    length = int.from_bytes(raw[32:64], "big")
    return raw[64:64 + length]


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise InvariantViolation(msg)


class OracleMachine(RuleBasedStateMachine):
    sys: FuzzSystem  # set by the test before running (deployed once per session)

    def __init__(self) -> None:
        super().__init__()
        s = self.sys
        chain = FuzzChain(s.rpc, s.oracle, s.abi)
        if s.base_snapshot:
            chain.revert(s.base_snapshot)
        s.base_snapshot = chain.snapshot()
        self.chain = chain
        self.failed = False
        self.rule_counts: Counter[str] = Counter()
        self.focus: Req | None = None  # the request whose deadline the last warp aimed at
        self.current_rule = ""
        a = s.actors
        self.honest = [*a.honest, a.poor]
        self.operators = [*a.honest, *a.dishonest, a.poor]
        self.consumer_addrs = [s.consumers[k] for k in sorted(s.consumers)]
        self.kind_of = {addr: kind for kind, addr in s.consumers.items()}
        self.tracked = [*a.eoas, *self.consumer_addrs, s.oracle, BURN_ADDRESS]
        balances = self._read_balances()
        models = {
            s.att_model: ModelM(s.att_model, False, *self._fee_bond(s.att_model), 64, 32),
            s.exact_model: ModelM(s.exact_model, True, *self._fee_bond(s.exact_model), 64, 1),
            s.retired_model: ModelM(s.retired_model, False, *self._fee_bond(s.retired_model), 64, 32, True),
            s.token_model: ModelM(s.token_model, True, *self._fee_bond(s.token_model), 64, 1, token=True),
        }
        self.token_holders = [*a.eoas, s.oracle]
        self.model = ProtocolModel(
            models=models,
            ops={op: OpM(staked=s.initial_stake[op]) for op in self.operators},
            eth=dict(balances), oracle=s.oracle, burn=BURN_ADDRESS, tokens=self._read_tokens(),
            deposits=dict(s.initial_stake),
            roster=[op for op, amount in s.initial_stake.items() if amount >= MIN_OPERATOR_STAKE],  # staking order
            weight_cap=min(max(s.initial_stake.values()), MAX_ASSIGNMENT_WEIGHT),
        )
        self.total_eth = sum(balances.values())
        # Chain-derived ledgers (from events only), independent of the model.
        self.settled: Counter[int] = Counter()
        self.submissions: dict[int, tuple[str, bytes]] = {}
        self.slashed_by_events: Counter[str] = Counter()
        self.prev_status: dict[int, St] = {}
        self.honest_wealth: dict[str, int | None] = {op: None for op in self.honest}
        self.given_away: Counter[str] = Counter()  # what honest operators chose to send to someone else
        self.deliveries = 0
        self.last_delivery: tuple[int, bytes] | None = None
        self.unknown_id = OracleClient.compute_request_id(2**63 - 1, b"never requested")

    # ------------------------------------------------------------ helpers
    def note_failure(self, exc: BaseException) -> None:
        """Marks the example failed; the first failure of a run is recorded with the steps and seconds it
        took to find (before shrinking), and written to $ORACLE_FUZZ_FAILURE_OUT if set (mutants.py)."""
        self.failed = True
        stats = self.sys.stats
        if "first_failure" in stats or not isinstance(exc, Exception):
            return
        found = {"steps": stats.get("steps", 0), "seconds": round(time.monotonic() - stats.get("started", 0), 1),
                 "error": f"{type(exc).__name__}: {exc}"[:500]}
        stats["first_failure"] = found
        out = os.environ.get("ORACLE_FUZZ_FAILURE_OUT")
        if out:
            Path(out).write_text(json.dumps(found, indent=1) + "\n")

    def _fee_bond(self, model_id: int) -> tuple[int, int]:
        m = self.sys.abi.getModel
        out = self.sys.abi.getModel.decode(self._call(self.sys.oracle, m.data(model_id)))[0]
        return int(out[3]), int(out[4])

    def _call(self, to: str, data: str) -> str:
        return str(self.sys.rpc.call("eth_call", [{"to": to, "data": data}, "latest"]))

    def _read_tokens(self) -> dict[str, int]:
        fn = self.sys.token_abi.balanceOf
        res = self.sys.rpc.batch([("eth_call", [{"to": self.sys.token, "data": fn.cached_data(a)}, "latest"])
                                  for a in self.token_holders])
        return {a: int(v, 16) for a, v in zip(self.token_holders, res, strict=True)}

    def _read_balances(self) -> dict[str, int]:
        res = self.sys.rpc.batch([("eth_getBalance", [a, "latest"]) for a in self.tracked])
        return {a: int(v, 16) for a, v in zip(self.tracked, res, strict=True)}

    def _send(self, sender: str, fn: str, *args: Any, value: int = 0, gas: int = GAS, to: str | None = None,
              abi_owner: str | None = None) -> TxResult:
        abi = self.sys.consumer_abi[abi_owner] if abi_owner else self.sys.abi
        data = getattr(abi, fn).data(*args)
        res = self.chain.send(sender, to or self.sys.oracle, data, value=value, gas=gas)
        self._ledger(res)
        return res

    def _outcome(self, res: TxResult, expected: str | None, what: str) -> bool:
        """Checks the transaction did exactly what the model predicted; returns True on success."""
        key = f"outcome:{self.current_rule or what}:{expected or 'ok'}"
        self.sys.stats[key] = self.sys.stats.get(key, 0) + 1
        if expected is None:
            expect(res.ok, f"{what}: expected success, reverted with {res.error}{res.error_args}")
            return True
        expect(not res.ok, f"{what}: expected revert {expected}, but it succeeded")
        expect(res.error == expected, f"{what}: expected revert {expected}, got {res.error}{res.error_args}")
        expect(not res.events, f"{what}: a reverted transaction emitted events")
        return False

    def _events(self, res: TxResult, name: str) -> list[dict[str, Any]]:
        return [args for n, args in res.events if n == name]

    def _ledger(self, res: TxResult) -> None:
        """Invariants 2-4 from the events alone: one submission and one settlement per request, and every
        slash paired with a proven fraud on a wrong output."""
        frauds = {}
        for name, args in res.events:
            if name == "ResultSubmitted":
                rid = args["requestId"]
                expect(rid not in self.submissions, f"second effective submission for {rid:#x}")
                self.submissions[rid] = (args["operator"], bytes(args["output"]))
            elif name in ("RequestFinalized", "FraudProven", "RequestRefunded"):
                rid = args["requestId"]
                self.settled[rid] += 1
                expect(self.settled[rid] == 1, f"request {rid:#x} settled twice ({name}): fee paid twice")
                if name == "FraudProven":
                    frauds[rid] = args
        for name, args in res.events:
            if name == "Slashed":
                rid, op = args["requestId"], args["operator"]
                expect(rid in frauds, f"slash of {op} for {rid:#x} without a FraudProven")
                sub_op, sub_out = self.submissions.get(rid, (None, b""))
                expect(sub_op == op, f"slashed {op}, but {sub_op} attested {rid:#x}")
                expect(bytes(frauds[rid]["correctOutput"]) != sub_out, f"slash of a correct result {rid:#x}")
                expect(op not in self.honest, f"honest operator {op} slashed")
                self.slashed_by_events[op] += args["amount"]

    def _req(self, sel: int, pick: int, want: Callable[[Req], bool]) -> Req | None:
        """Chooses a request: mostly one the rule can act on, sometimes any, sometimes an unknown id. Right
        after a warp to a request's deadline, that request is the usual choice whatever its state, so that
        actions land exactly on (and one second either side of) the edges."""
        reqs = self.model.reqs
        if sel == UNKNOWN or not reqs:
            return None
        focus, self.focus = self.focus, None
        if focus is not None and pick % 4 != 0:
            return focus
        if sel == GOOD:
            good = [r for r in reqs if want(r)]
            if good:
                return good[pick % len(good)]
        return reqs[pick % len(reqs)]

    def _rid(self, req: Req | None) -> int:
        return self.unknown_id if req is None else req.rid

    @property
    def now(self) -> int:
        return self.chain.next_ts

    def _status(self, r: Req) -> St:
        """Status at the time the next transaction lands (what decides its outcome)."""
        return r.status(self.now)

    # ------------------------------------------------------------ requests
    # Hypothesis picks rules unevenly; these caps keep an example from spending itself on one kind of step.
    def _few_open(self) -> bool:
        return sum(1 for r in self.model.reqs if not (r.finalized or r.refunded)) < 10

    def _under(self, name: str, cap: int) -> bool:
        return self.rule_counts[name] < cap

    def _useful(self, name: str, want: Callable[[Req], bool]) -> bool:
        """A rule runs when some request is in a state it can act on; the first few calls run regardless,
        for the error paths (unknown ids, too early, nothing to do)."""
        return self.rule_counts[name] < 3 or self.focus is not None or any(want(r) for r in self.model.reqs)

    @precondition(lambda self: self._few_open())
    @rule(who=one_of(0, 1), which=weighted((8, "att"), (8, "exact"), (6, "token"), (1, "retired"), (1, "unknown")),
          inp=picks, cb=weighted((3, 0), (1, 10_000), (2, 200_000), (1, 1_000_000), (1, CB_TOO_HIGH)),
          fee=weighted((14, "ok"), (3, "cbpay"), (1, "cbodd"), (1, "low"), (1, "high"), (1, "zero")),
          short=chance(5))
    @step
    def request_from_eoa(self, who: int, which: str, inp: int, cb: int, fee: str, short: bool) -> None:
        sender = self.sys.actors.requesters[who]
        self._request(sender, None, which, inp, cb, fee, short)

    @precondition(lambda self: self._few_open())
    @rule(kind=one_of("RecordingConsumer", "RevertingConsumer", "GasHungryConsumer", "ReentrantConsumer"),
          who=one_of(0, 1), which=weighted((1, "att"), (2, "exact")), inp=picks,
          cb=weighted((1, 0), (1, 10_000), (3, 200_000), (2, 1_000_000)),
          fee=weighted((1, "ok"), (2, "cbpay")))
    @step
    def request_from_consumer(self, kind: str, who: int, which: str, inp: int, cb: int, fee: str) -> None:
        self._request(self.sys.actors.requesters[who], kind, which, inp, cb, fee, False)

    def _request(self, payer: str, kind: str | None, which: str, inp: int, cb: int, fee: str, short: bool) -> None:
        s = self.sys
        model_id = {"att": s.att_model, "exact": s.exact_model, "retired": s.retired_model,
                    "token": s.token_model, "unknown": 77}[which]
        if which in ("exact", "token"):
            # Even draws: the model's shipped samples; odd: arbitrary bytes (the whole int8 input range),
            # answered by the reference interpreter, so the verifier is cross-checked against the spec.
            if inp % 2 == 0:
                data, correct = s.exact_samples[inp // 2 % len(s.exact_samples)]
            else:
                data = keccak(b"exact-input-%d" % inp) + keccak(b"exact-input-tail-%d" % inp)
                correct = exact_reference(data)
        else:
            data = ATT_INPUTS[inp % len(ATT_INPUTS)]
            correct = keccak(data)
        if short:
            data = data[:-1]
        m = self.model.models.get(model_id)
        base = m.eth_fee if m else 10**15  # a token fee is pulled with transferFrom, not sent
        # cbpay: a callback deposit at 1-3 units of committed gas price (the callback runs: base fee 0);
        # cbodd: a deposit that is not a whole number of units (refused).
        per_unit = callback_gas_charged(cb) * GAS_PRICE_UNIT
        value = {"ok": base, "low": base - 1, "high": base + 1, "zero": 0, "cbpay": base + per_unit * (1 + inp % 3),
                 "cbodd": base + per_unit + 1}[fee]
        value = max(value, 0)  # "low" for a token model (no ETH fee): nothing sent
        expected = self.model.check_request(model_id, data, cb, value)
        if kind is None:
            requester = payer
            res = self._send(payer, "requestInference", model_id, data, cb, value=value)
        else:
            requester = s.consumers[kind]
            res = self._send(payer, "request", model_id, data, cb, value=value, to=requester, abi_owner=kind)
        if not self._outcome(res, expected, f"request({which}, kind={kind})"):
            return
        assert m is not None
        rid = OracleClient.compute_request_id(self.model.nonce + 1, data)
        (ev,) = self._events(res, "InferenceRequested")
        expect(ev["requestId"] == rid and ev["requester"] == requester and ev["fee"] == m.fee
               and ev["modelId"] == model_id and bytes(ev["input"]) == data and ev["callbackGasLimit"] == cb,
               f"InferenceRequested mismatch: {ev}")
        # The assignee is predicted from the block's RANDAO mix, the roster and the free stakes.
        block = self.sys.rpc.call("eth_getBlockByNumber", [res.receipt["blockNumber"], False])
        assignee = self.model.assign(rid, m.bond, int(block["mixHash"], 16))
        got = None if int(ev["assignee"], 16) == 0 else ev["assignee"]
        expect(got == assignee, f"assignee: chain {got}, model {assignee}")
        self.sys.stats["assigned" if assignee else "unassigned"] = self.sys.stats.get(
            "assigned" if assignee else "unassigned", 0) + 1
        self.model.apply_request(rid, payer, requester, kind, model_id, data, correct, cb, res.timestamp, value,
                                 assignee)

    # ------------------------------------------------------------ submissions
    def _output_for(self, op: str, req: Req | None, variant: str) -> bytes:
        if req is None:
            return keccak(b"unknown")
        if op in self.honest or variant == "correct":
            return req.correct
        if variant == "badlen":
            return req.correct + b"\x00"
        if req.model.exact:
            return bytes([(req.correct[0] + 1 + len(req.input) % 3) % 10])
        return keccak(req.correct)

    @precondition(lambda self: self._useful("submit", lambda r: self._status(r) == St.PENDING))
    @rule(op=weighted((2, 0), (2, 1), (3, 2), (3, 3), (1, 4)), sel=selectors, pick=picks,
          variant=weighted((6, "wrong"), (3, "correct"), (1, "badlen")), assignee=chance(60))
    @step
    def submit(self, op: int, sel: int, pick: int, variant: str, assignee: bool) -> None:
        """Mostly the request's assignee; otherwise anyone (inside the exclusive period: `NotAssigned`)."""
        req = self._req(sel, pick, lambda r: self._status(r) == St.PENDING)
        operator = req.assignee if assignee and req is not None and req.assignee else self.operators[op]
        output = self._output_for(operator, req, variant)
        expected = self.model.check_submit(req, operator, output, self.now)
        res = self._send(operator, "submitResult", self._rid(req), output)
        if self._outcome(res, expected, "submitResult"):
            assert req is not None
            (ev,) = self._events(res, "ResultSubmitted")
            expect(ev["operator"] == operator and bytes(ev["output"]) == output, f"ResultSubmitted {ev}")
            self.model.apply_submit(req, operator, output, res.timestamp)

    @precondition(lambda self: self._useful("submit_batch", lambda r: self._status(r) == St.PENDING))
    @rule(op=weighted((2, 0), (2, 1), (3, 2), (3, 3), (1, 4)),
          items=st.lists(st.tuples(selectors, picks), min_size=1, max_size=3),
          variant=weighted((5, "wrong"), (4, "correct"), (1, "badlen")), mismatch=chance(5))
    @step
    def submit_batch(self, op: int, items: list[tuple[int, int]], variant: str, mismatch: bool) -> None:
        operator = self.operators[op]
        chosen = [self._req(t, p, lambda r: self._status(r) == St.PENDING) for t, p in items]
        outputs = [self._output_for(operator, r, variant) for r in chosen]
        ids = [self._rid(r) for r in chosen]
        if mismatch:
            expected, done = "LengthMismatch", []
            outputs = outputs[:-1]
        else:
            expected, done = self.model.plan_submit_batch(list(zip(chosen, outputs, strict=True)), operator, self.now)
        res = self._send(operator, "submitResults", ids, outputs, gas=GAS_BATCH)
        if self._outcome(res, expected, "submitResults"):
            evs = self._events(res, "ResultSubmitted")
            expect([e["requestId"] for e in evs] == [r.rid for r, _ in done], "submitResults accepted other ids")
            for req, output in done:
                self.model.apply_submit(req, operator, output, res.timestamp)

    # ------------------------------------------------------------ settlement
    def _finalize_output(self, req: Req | None, wrong: bool) -> bytes:
        if req is None or req.output is None:
            return b"\x01"
        attested = req.correct if req.fraud else req.output
        return keccak(attested) if wrong else attested

    def _settled_event(self, res: TxResult, req: Req, settler: str) -> None:
        """Applies a finalization to the model and checks its event, callback outcome and delivery."""
        ev = next((e for e in self._events(res, "RequestFinalized") if e["requestId"] == req.rid), None)
        expect(ev is not None, f"no RequestFinalized for {req.rid:#x}")
        assert ev is not None
        expect(ev["operator"] == req.operator and ev["fee"] == req.model.fee, f"RequestFinalized mismatch {ev}")
        ok = bool(ev["callbackSucceeded"])
        predicted = self.model.apply_finalize(req, ok, settler)
        expect(predicted is None or predicted == ok,
               f"callback of {req.kind} with {req.cb_gas} gas: expected ok={predicted}, got {ok}")
        self._delivered(req, ok, req.output)

    def _delivered(self, req: Req, ok: bool, output: bytes | None) -> None:
        if ok and req.kind == "RecordingConsumer":
            assert output is not None
            self.deliveries += 1
            self.last_delivery = (req.rid, output)

    @precondition(lambda self: self._useful("finalize", lambda r: self._status(r) == St.FINALIZABLE))
    @rule(caller=one_of(*range(12)), sel=selectors, pick=picks, wrong=chance(8), starved=chance(10))
    @step
    def finalize(self, caller: int, sel: int, pick: int, wrong: bool, starved: bool) -> None:
        sender = self.sys.actors.eoas[caller % len(self.sys.actors.eoas)]
        req = self._req(sel, pick, lambda r: self._status(r) == St.FINALIZABLE)
        output = self._finalize_output(req, wrong)
        expected = self.model.check_finalize(req, output, self.now, starved)
        res = self._send(sender, "finalize", self._rid(req), output, gas=GAS_STARVED if starved else GAS)
        if self._outcome(res, expected, f"finalize(starved={starved})"):
            assert req is not None
            self._settled_event(res, req, sender)

    @precondition(lambda self: self._useful("finalize_batch", lambda r: self._status(r) == St.FINALIZABLE))
    @rule(caller=one_of(*range(12)), items=st.lists(st.tuples(selectors, picks), min_size=1, max_size=4),
          wrong=chance(5), mismatch=chance(5))
    @step
    def finalize_batch(self, caller: int, items: list[tuple[int, int]], wrong: bool, mismatch: bool) -> None:
        sender = self.sys.actors.eoas[caller % len(self.sys.actors.eoas)]
        chosen = [self._req(t, p, lambda r: self._status(r) == St.FINALIZABLE) for t, p in items]
        outputs = [self._finalize_output(r, wrong and i == 0) for i, r in enumerate(chosen)]
        if mismatch:
            expected, done = "LengthMismatch", []
            outputs.append(b"")
        else:
            expected, done = self.model.plan_finalize_batch(list(zip(chosen, outputs, strict=True)), self.now)
        res = self._send(sender, "finalizeBatch", [self._rid(r) for r in chosen], outputs, gas=GAS_BATCH)
        if self._outcome(res, expected, "finalizeBatch"):
            evs = self._events(res, "RequestFinalized")
            expect([e["requestId"] for e in evs] == [r.rid for r in done], "finalizeBatch finalized other ids")
            for req in done:
                self._settled_event(res, req, sender)

    @precondition(lambda self: self._useful("challenge", lambda r: r.model.exact and self._status(r) == St.SUBMITTED))
    @rule(who=weighted((3, 0), (3, 1), (1, 2), (1, 3)), sel=selectors, pick=picks, smart=chance(75),
          wrong_input=chance(8))
    @step
    def challenge(self, who: int, sel: int, pick: int, smart: bool, wrong_input: bool) -> None:
        """A challenger (or a dishonest operator challenging itself, or an honest operator). A "smart"
        challenger re-executed off-chain and goes for a wrong result; otherwise any open EXACT result."""
        a = self.sys.actors
        challenger = [*a.challengers, a.dishonest[0], a.honest[0]][who]
        req = self._req(sel, pick, lambda r: r.model.exact and self._status(r) == St.SUBMITTED
                        and (r.is_wrong or not smart))
        data = (req.input if req else ATT_INPUTS[0])
        if wrong_input:
            data = bytes([data[0] ^ 1]) + data[1:]
        expected = self.model.check_challenge(req, data, self.now)
        res = self._send(challenger, "challenge", self._rid(req), data, gas=GAS_CHALLENGE)
        if not self._outcome(res, expected, "challenge"):
            return
        assert req is not None
        operator = req.operator
        (ev,) = self._events(res, "FraudProven")
        (sl,) = self._events(res, "Slashed")
        reward, burned, predicted = self.model.apply_challenge(req, challenger, bool(ev["callbackSucceeded"]))
        expect(ev["operator"] == operator and ev["challenger"] == challenger and ev["reward"] == reward
               and ev["burned"] == burned and bytes(ev["correctOutput"]) == req.correct
               and predicted in (None, req.callback_ok), f"FraudProven mismatch {ev} (callback predicted {predicted})")
        expect(sl["operator"] == operator and sl["amount"] == req.model.bond, f"Slashed mismatch {sl}")
        self._delivered(req, req.callback_ok, req.correct)

    @precondition(lambda self: self._useful("refund", lambda r: self._status(r) == St.EXPIRED))
    @rule(caller=one_of(*range(12)), sel=selectors, pick=picks)
    @step
    def refund(self, caller: int, sel: int, pick: int) -> None:
        sender = self.sys.actors.eoas[caller % len(self.sys.actors.eoas)]
        req = self._req(sel, pick, lambda r: self._status(r) == St.EXPIRED)
        expected = self.model.check_refund(req, self.now)
        res = self._send(sender, "refund", self._rid(req))
        if self._outcome(res, expected, "refund"):
            assert req is not None
            (ev,) = self._events(res, "RequestRefunded")
            expect(ev["requester"] == req.requester and ev["fee"] == req.model.fee, f"RequestRefunded {ev}")
            self.model.apply_refund(req)

    # ------------------------------------------------------------ money out
    def _to(self, choice: str, own: str) -> tuple[str, bool]:
        """A payout destination and whether it rejects ETH (the oracle has no receive function)."""
        return {"self": (own, False), "stranger": (self.sys.actors.stranger, False),
                "consumer": (self.sys.consumers["RevertingConsumer"], False),
                "oracle": (self.sys.oracle, True)}[choice]

    @precondition(lambda self: self.rule_counts["withdraw"] < 3 or any(self.model.credits.values()))
    @rule(who=picks, anyone=chance(15), to=weighted((14, "self"), (2, "stranger"), (2, "consumer"), (1, "oracle")))
    @step
    def withdraw(self, who: int, anyone: bool, to: str) -> None:
        a = self.sys.actors
        accounts = [*self.operators, *a.challengers, *a.requesters, *self.consumer_addrs]
        with_credits = [x for x in accounts if self.model.credits.get(x, 0)]
        # Mostly someone with credits; every so often anyone (NoCredits).
        pool = with_credits if with_credits and not anyone else accounts
        account = pool[who % len(pool)]
        dest, rejects = self._to(to, account)
        expected = self.model.check_withdraw(account, dest, rejects)
        if account in self.kind_of:
            res = self._send(a.requesters[0], "withdrawCredits", dest, to=account, abi_owner=self.kind_of[account])
        else:
            res = self._send(account, "withdraw", dest)
        if self._outcome(res, expected, "withdraw"):
            amount = self.model.apply_withdraw(account, dest)
            if dest != account:
                self.given_away[account] += amount
            (ev,) = self._events(res, "CreditsWithdrawn")
            expect(ev["account"] == account and ev["to"] == dest and ev["amount"] == amount, f"CreditsWithdrawn {ev}")

    @precondition(lambda self: self.rule_counts["withdraw_token"] < 2 or any(self.model.token_credits.values()))
    @rule(who=picks, anyone=chance(15), to=weighted((6, "self"), (1, "stranger")))
    @step
    def withdraw_token(self, who: int, anyone: bool, to: str) -> None:
        a = self.sys.actors
        accounts = [*self.operators, *a.challengers, *a.requesters]
        with_credits = [x for x in accounts if self.model.token_credits.get(x, 0)]
        pool = with_credits if with_credits and not anyone else accounts
        account = pool[who % len(pool)]
        dest = account if to == "self" else a.stranger
        expected = self.model.check_withdraw_token(account)
        res = self._send(account, "withdrawToken", self.sys.token, dest)
        if self._outcome(res, expected, "withdrawToken"):
            amount = self.model.apply_withdraw_token(account, dest)
            (ev,) = self._events(res, "TokenCreditsWithdrawn")
            expect(ev["account"] == account and ev["to"] == dest and ev["amount"] == amount
                   and ev["token"] == self.sys.token, f"TokenCreditsWithdrawn {ev}")

    # ------------------------------------------------------------ staking
    @precondition(lambda self: self._under("stake", 8))
    @rule(op=one_of(*range(5)), amount=weighted((1, 0), (1, 1), (2, 4 * 10**15), (3, 10**16), (3, 3 * 10**16)))
    @step
    def stake(self, op: int, amount: int) -> None:
        operator = self.operators[op]
        expected = self.model.check_stake(amount)
        res = self._send(operator, "stake", value=amount)
        if self._outcome(res, expected, "stake"):
            self.model.apply_stake(operator, amount)

    @precondition(lambda self: self._under("request_unstake", 6))
    @rule(op=one_of(*range(5)),
          how=weighted((1, "zero"), (1, "one"), (3, "bond"), (2, "free"), (1, "free+1"), (1, "staked")))
    @step
    def request_unstake(self, op: int, how: str) -> None:
        operator = self.operators[op]
        s = self.model.ops[operator]
        free = s.staked - s.locked
        amount = {"zero": 0, "one": 1, "bond": 10**16, "free": free, "free+1": free + 1, "staked": s.staked}[how]
        expected = self.model.check_unstake(operator, amount)
        res = self._send(operator, "requestUnstake", amount)
        if self._outcome(res, expected, "requestUnstake"):
            self.model.apply_unstake(operator, amount, res.timestamp)

    @precondition(lambda self: self.rule_counts["withdraw_stake"] < 2
                  or any(o.pending and o.withdrawable_at <= self.now + 1 for o in self.model.ops.values()))
    @rule(op=one_of(*range(5)), anyone=chance(15), to=weighted((6, "self"), (2, "stranger"), (1, "oracle")))
    @step
    def withdraw_stake(self, op: int, anyone: bool, to: str) -> None:
        # Mostly an operator whose unbonding ends now or one second from now (the edge), else anyone.
        pending = [o for o in self.operators
                   if self.model.ops[o].pending and self.model.ops[o].withdrawable_at <= self.now + 1]
        operator = pending[op % len(pending)] if pending and not anyone else self.operators[op]
        dest, rejects = self._to(to, operator)
        expected = self.model.check_withdraw_stake(operator, self.now, rejects)
        res = self._send(operator, "withdrawStake", dest)
        if self._outcome(res, expected, "withdrawStake"):
            amount = self.model.apply_withdraw_stake(operator, dest)
            if dest != operator:
                self.given_away[operator] += amount

    @precondition(lambda self: self._under("force_send", 2))
    @rule(amount=one_of(1, 10**15, 7 * 10**15))
    @step
    def force_send(self, amount: int) -> None:
        data = encode_create(self.sys.force_sender_bytecode, ["address"], [self.sys.oracle])
        res = self.chain.send(self.sys.actors.forcer, None, data, value=amount, gas=GAS)
        self._outcome(res, None, "ForceSender")
        self.model.apply_force(self.sys.actors.forcer, amount)

    # ------------------------------------------------------------ time
    # Never two warps in a row: with swarm testing (hypothesis switches rules off per example) warps would
    # otherwise fill whole examples.
    @precondition(lambda self: self.current_rule != "warp")
    @rule(kind=weighted((3, "submit_deadline"), (4, "challenge_deadline"), (1, "unbonding"), (2, "small"),
                        (1, "large")),
          pick=picks, offset=weighted((1, -1), (2, 0), (1, 1)))
    @step
    def warp(self, kind: str, pick: int, offset: int) -> None:
        """Moves time so that the next transaction lands exactly on (or one second either side of) an edge:
        a request's submission deadline, a result's challenge deadline or an unbonding end."""
        edges: list[tuple[int, Req | None]] = []
        if kind == "submit_deadline":
            edges = [(r.requested_at + TIMEOUT, r) for r in self.model.reqs if self._status(r) == St.PENDING]
        elif kind == "challenge_deadline":
            edges = [(r.submitted_at + WINDOW, r) for r in self.model.reqs if self._status(r) == St.SUBMITTED]
        elif kind == "unbonding":
            edges = [(s.withdrawable_at, None) for s in self.model.ops.values() if s.pending]
        elif kind == "large":
            edges = [(self.now + TIMEOUT + pick % 600, None)]
        if not edges:
            edges = [(self.now + 1 + pick % 120, None)]
        edge, self.focus = edges[pick % len(edges)]
        self.chain.warp(edge + offset)

    # ------------------------------------------------------------ invariants after every step
    @invariant()
    def check_state(self) -> None:
        try:
            self._check_state()
        except BaseException as exc:
            self.note_failure(exc)
            raise

    def _check_state(self) -> None:
        s, m, abi = self.sys, self.model, self.sys.abi
        reqs = m.reqs
        rec = s.consumers["RecordingConsumer"]
        reent = s.consumers["ReentrantConsumer"]
        rec_abi, reent_abi = s.consumer_abi["RecordingConsumer"], s.consumer_abi["ReentrantConsumer"]
        credit_accounts = [*s.actors.eoas, *self.consumer_addrs]

        def call(to: str, data: str) -> tuple[str, list[Any]]:
            return ("eth_call", [{"to": to, "data": data}, "latest"])

        calls: list[tuple[str, list[Any]]] = [("eth_getBalance", [a, "latest"]) for a in self.tracked]
        calls += [call(s.oracle, abi.stakeOf.cached_data(op)) for op in self.operators]
        calls += [call(s.oracle, abi.creditsOf.cached_data(a)) for a in credit_accounts]
        calls += [call(s.oracle, abi.tokenCreditsOf.cached_data(a, s.token)) for a in s.actors.eoas]
        calls += [call(s.token, s.token_abi.balanceOf.cached_data(a)) for a in self.token_holders]
        calls += [call(s.oracle, abi.getRequest.cached_data(r.rid)) for r in reqs]
        calls += [call(s.oracle, abi.statusOf.cached_data(self.unknown_id))]
        calls += [call(rec, rec_abi.deliveries.cached_data()), call(rec, rec_abi.lastRequestId.cached_data()),
                  call(rec, rec_abi.lastOutput.cached_data())]
        calls += [call(reent, reent_abi.attempted.cached_data()), call(reent, reent_abi.finalizeReverted.cached_data()),
                  call(reent, reent_abi.withdrawReverted.cached_data())]
        calls.append(("eth_getBlockByNumber", ["latest", False]))
        t0 = time.perf_counter()
        out = s.rpc.batch(calls)
        self.sys.stats["us:state_rpc"] = self.sys.stats.get("us:state_rpc", 0) + int(1e6 * (time.perf_counter() - t0))
        # Hand-decoded (all static words): eth_abi checksums every address it decodes, which dominated profiles.
        it = iter(out)
        balances = {a: int(next(it), 16) for a in self.tracked}
        stakes = {op: words(next(it)) for op in self.operators}
        credits = {a: int(next(it), 16) for a in credit_accounts}
        token_credits = {a: int(next(it), 16) for a in s.actors.eoas}
        tokens = {a: int(next(it), 16) for a in self.token_holders}
        views = {r.rid: words(next(it)) for r in reqs}
        unknown_status = int(next(it), 16)
        deliveries = int(next(it), 16)
        last_rid = int(next(it), 16)
        last_out = dynamic_bytes(next(it))
        attempted, fin_rev, wd_rev = (int(next(it), 16) for _ in range(3))
        now = int(next(it)["timestamp"], 16)
        expect(now == self.chain.last_ts, f"latest block at {now}, chain helper thinks {self.chain.last_ts}")

        # --- the model, field by field
        for a in self.tracked:
            expect(balances[a] == m.eth[a], f"ETH balance of {a}: chain {balances[a]}, model {m.eth[a]}")
        for op in self.operators:
            st_ = stakes[op]
            mo = m.ops[op]
            expect(st_ == [mo.staked, mo.locked, mo.pending, mo.withdrawable_at],
                   f"stake of {op}: chain {st_}, model {mo}")
        for a in credit_accounts:
            expect(credits[a] == m.credits.get(a, 0),
                   f"credits of {a}: chain {credits[a]}, model {m.credits.get(a, 0)}")
        for a in s.actors.eoas:
            expect(token_credits[a] == m.token_credits.get(a, 0),
                   f"token credits of {a}: chain {token_credits[a]}, model {m.token_credits.get(a, 0)}")
        for a in self.token_holders:
            expect(tokens[a] == m.tokens[a], f"token balance of {a}: chain {tokens[a]}, model {m.tokens[a]}")
        statuses: dict[int, St] = {}
        for r in reqs:
            v = views[r.rid]
            status = St(v[8])
            statuses[r.rid] = status
            want = [int(r.requester, 16), r.model.model_id, r.cb_gas, r.requested_at,
                    int(r.operator or r.assignee or "0x0", 16), r.submitted_at,
                    int.from_bytes(r.attested_hash, "big"), int(r.callback_ok), int(r.status(now))]
            expect(v == want, f"request {r.rid:#x}: chain {v}, model {want} (requester, model, cb gas, requested, "
                              f"operator, submitted, output hash, callback ok, status)")
        expect(unknown_status == St.NONE, "an unknown id has a status")

        # --- 1. solvency, from chain values only
        staked_total = sum(v[0] + v[2] for v in stakes.values())
        # Escrow: fee and callback deposit of every open request (statuses from the chain).
        escrow = sum(r.model.eth_fee + r.deposit for r in reqs if statuses[r.rid] in ESCROWED)
        owed = staked_total + escrow + sum(credits.values())
        bal = balances[s.oracle]
        expect(bal >= owed, f"INSOLVENT: balance {bal} < owed {owed}")
        expect(bal == owed + m.forced, f"solvency: balance {bal} != owed {owed} + force-sent {m.forced}")
        expect(sum(balances.values()) == self.total_eth, "ETH was created or destroyed")
        # ... and per asset: the oracle's token balance is exactly its token credits plus escrowed token fees.
        token_escrow = sum(r.model.fee for r in reqs if r.model.token and statuses[r.rid] in ESCROWED)
        token_owed = token_escrow + sum(token_credits.values())
        expect(tokens[s.oracle] == token_owed,
               f"token solvency: balance {tokens[s.oracle]} != escrow {token_escrow} + credits")

        # --- 2. forward-only lifecycle, settled and called back at most once
        for rid, status in statuses.items():
            prev = self.prev_status.get(rid, St.PENDING)
            expect(status in FORWARD[prev], f"request {rid:#x} moved backwards: {prev.name} -> {status.name}")
            self.prev_status[rid] = status
        expect(deliveries == self.deliveries,
               f"recording consumer: {deliveries} deliveries, expected {self.deliveries}")
        if self.last_delivery is not None:
            expect((last_rid, last_out) == self.last_delivery, "recording consumer got the wrong output")
        # The reentrant consumer's attempts to re-enter finalize / withdraw must all have reverted.
        expect(not attempted or (fin_rev and wd_rev), "the reentrant consumer re-entered the oracle")

        # --- 3. each fee paid exactly once (events), and only once the request is settled
        for r in reqs:
            final = statuses[r.rid] in (St.REFUNDED, St.FINALIZED, St.FRAUD_PROVEN)
            expect(self.settled[r.rid] == (1 if final else 0) == r.settlements,
                   f"request {r.rid:#x} ({statuses[r.rid].name}) paid {self.settled[r.rid]} times")

        # --- 4. no slash without fraud; honest operators never lose
        for op in self.operators:
            expect(self.slashed_by_events[op] == m.slashed.get(op, 0), f"slashes of {op} differ from proven frauds")
            # Stake only leaves through withdrawStake or a Slashed event (paired with a FraudProven above).
            expect(stakes[op][0] + stakes[op][2] == m.deposits.get(op, 0) - self.slashed_by_events[op],
                   f"{op}: stake {stakes[op][0]} + pending {stakes[op][2]} != deposits - proven slashes")
        for op in self.honest:
            v = stakes[op]
            wealth = balances[op] + v[0] + v[2] + credits[op] + self.given_away[op]
            before = self.honest_wealth[op]
            if before is not None:
                expect(wealth >= before, f"honest operator {op} lost {before - wealth} wei")
            self.honest_wealth[op] = wealth

        # --- 5. locked stake == bonds of open attestations <= staked
        for op in self.operators:
            op_int = int(op, 16)
            open_bonds = sum(r.model.bond for r in reqs
                             if statuses[r.rid] in OPEN_ATTESTATION and views[r.rid][4] == op_int)
            expect(stakes[op][1] == open_bonds, f"{op}: locked {stakes[op][1]} != open bonds {open_bonds}")
            expect(stakes[op][1] <= stakes[op][0], f"{op}: locked {stakes[op][1]} > staked {stakes[op][0]}")

        # --- 6. callbacks never move money: consumers only ever hold what withdrawals sent them (model),
        # which the balance check above covers; nothing else depends on a callback in the model.

    # ------------------------------------------------------------ end of example: settle everything
    def teardown(self) -> None:
        self.sys.stats["us:tx_rpc"] = self.sys.stats.get("us:tx_rpc", 0) + int(1e6 * self.chain.tx_seconds)
        self.sys.stats["txs"] = self.sys.stats.get("txs", 0) + self.chain.txs
        self.current_rule = "settle"
        if self.failed:
            return
        self.sys.stats["examples"] = self.sys.stats.get("examples", 0) + 1
        try:
            self.settle_everything()
        except BaseException as exc:
            self.note_failure(exc)
            raise

    def settle_everything(self) -> None:
        """Finalizes or refunds every request, withdraws every credit and every stake; then the oracle must
        hold exactly the force-sent ETH (protocol.md §8.1: "after everything settles ... it is zero")."""
        m, a = self.model, self.sys.actors
        latest = max([r.requested_at + TIMEOUT for r in m.reqs] + [r.submitted_at + WINDOW for r in m.reqs]
                     + [self.now])
        self.chain.warp(latest + 1)
        open_ = [r for r in m.reqs if r.status(self.now) == St.FINALIZABLE]
        for i in range(0, len(open_), 8):
            chunk = open_[i:i + 8]
            res = self._send(a.stranger, "finalizeBatch", [r.rid for r in chunk], [r.output for r in chunk],
                             gas=30_000_000)
            self._outcome(res, None, "settle: finalizeBatch")
            for r in chunk:
                self._settled_event(res, r, a.stranger)
        for r in m.reqs:
            if r.status(self.now) == St.EXPIRED:
                self._outcome(self._send(a.stranger, "refund", r.rid), None, "settle: refund")
                m.apply_refund(r)
        for account in [x for x in list(m.credits) if m.credits[x]]:
            if account in self.kind_of:
                res = self._send(a.requesters[0], "withdrawCredits", account, to=account,
                                 abi_owner=self.kind_of[account])
            else:
                res = self._send(account, "withdraw", account)
            self._outcome(res, None, "settle: withdraw")
            m.apply_withdraw(account, account)
        for account in [x for x in list(m.token_credits) if m.token_credits[x]]:
            self._outcome(self._send(account, "withdrawToken", self.sys.token, account), None,
                          "settle: withdrawToken")
            m.apply_withdraw_token(account, account)
        for op in self.operators:
            s = m.ops[op]
            expect(s.locked == 0, f"{op} still has locked stake after settlement")
            if s.staked:
                self._outcome(self._send(op, "requestUnstake", s.staked), None, "settle: requestUnstake")
                m.apply_unstake(op, s.staked, self.chain.last_ts)
        self.chain.warp(self.now + UNBONDING)
        for op in self.operators:
            if m.ops[op].pending:
                self._outcome(self._send(op, "withdrawStake", op), None, "settle: withdrawStake")
                m.apply_withdraw_stake(op, op)
        self._check_state()
        expect(m.owed(self.chain.last_ts) == 0, "something is still owed after full settlement")
        bal = int(self.sys.rpc.call("eth_getBalance", [self.sys.oracle, "latest"]), 16)
        expect(bal == m.forced, f"after full settlement the oracle holds {bal}, force-sent {m.forced}")
        expect(m.tokens[self.sys.oracle] == 0 and m.token_escrow(self.chain.last_ts) == 0,
               f"after full settlement the oracle holds {m.tokens[self.sys.oracle]} of the fee token")
        for r in m.reqs:
            expect(self.settled[r.rid] == 1, f"request {r.rid:#x} settled {self.settled[r.rid]} times")

