"""Stateful fuzz of the dispute game on anvil: a hypothesis state machine over claims, games and clocks.

Rules: claims (honest or with a wrong output), games opened against them by an honest or a lying challenger
(several side by side against one claim), moves by either side (the truthful side plays its trace or stays
silent; the other side plays its trace, random roots or random choices, or stays silent), time passing,
timeouts, finalize attempts and withdrawals. After every step (protocol §8, solvency first):

  1. solvency: the game's balance == GAME_BOND x open games + Σ credits; the oracle's balance ==
     Σ (staked + pending + credits) + escrowed fees of unsettled requests (both exact, from chain reads);
  2. the truthful side can still win: on its move (clock running) its move is accepted; on the other
     side's move, an expired clock lets it claim the timeout; a resolved game it lost was lost by its own
     silence (timeout), never by a step;
  3. ``openGames`` counts the open games of each claim; the oracle holds a claim exactly while a game
     against it is open (a finalize eth_call with the block time past the window fails iff one is), and
     no claim finalizes while one is;
  4. any won dispute resolves the claim as fraud, and a fraud comes only from a won dispute;
  5. every transaction used at most 16,777,216 gas (EIP-7825), and every move is sent with that limit.

CI-sized and derandomized by default: hypothesis draws the same examples on every run, so the coverage
check at the end (games played to a step resolution, both sides' moves accepted) cannot flake; one random
CI run once drew 180 steps with almost no moves. Random, bigger runs: ``GAME_FUZZ_RANDOM=1
GAME_FUZZ_EXAMPLES=100 GAME_FUZZ_STEPS=60 python -m pytest tests/dispute/test_game_state_machine.py -q -s``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from oracle.chain.reverts import from_web3_error
from oracle.dispute.actors import TX_GAS_CAP, GameView, Phase, move_for
from oracle.profile.program import Program
from oracle.profile.trace import Trace, perturb_at
from tests.dispute.conftest import CLOCK, FEE, GAME_BOND, WINDOW, GameSystem

EXAMPLES = int(os.environ.get("GAME_FUZZ_EXAMPLES", "6"))
STEPS = int(os.environ.get("GAME_FUZZ_STEPS", "30"))
SEEDS = (11, 12)  # request inputs (traces are cached per input and tamper)
WARPS = (5, 60, WINDOW, CLOCK // 2, CLOCK + 1)
SETTLED = {"REFUNDED", "FINALIZED", "FRAUD_PROVEN"}


_TRACES: dict[tuple[int, bytes, int | None], Trace] = {}


def trace_for(program: Program, x: bytes, lie_at: int | None) -> Trace:
    """The honest trace of input ``x`` (``lie_at`` None) or one perturbed at op ``lie_at`` (cached)."""
    key = (id(program), x, lie_at)
    if key not in _TRACES:
        _TRACES[key] = Trace.from_input_bytes(program, x, tamper=None if lie_at is None else perturb_at(lie_at))
    return _TRACES[key]


@dataclass
class Claim:
    rid: int
    x: bytes
    truth: Trace
    believed: Trace  # the operator's trace: its submitted output is this trace's

    @property
    def honest(self) -> bool:
        return self.believed.output_bytes() == self.truth.output_bytes()


@dataclass
class GameRec:
    gid: int
    claim: Claim
    challenger: str
    believed: Trace  # the challenger's trace
    resolved_by_timeout: bool | None = None

    @property
    def truthful(self) -> str | None:
        """The side whose trace is the truth and that must therefore never lose but by silence."""
        if self.claim.honest:
            return "operator"
        return "challenger" if self.believed is self.claim.truth else None


class GameMachine(RuleBasedStateMachine):
    gs: GameSystem
    stats: Counter[str]

    def __init__(self) -> None:
        super().__init__()
        w3 = self.gs.w3
        self.snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
        self.claims: list[Claim] = []
        self.games: list[GameRec] = []
        self.max_gas = 0
        self.challengers = [self.gs.challenger, self.gs.challenger2, w3.eth.accounts[5]]
        self.parties = [self.gs.owner, self.gs.operator, self.gs.user, *self.challengers]
        self.stats["examples"] += 1
        # Whatever the session left behind is a constant: it must stay exactly that.
        self.oracle_base = self._oracle_surplus()
        self.game_base = self._game_surplus()
        assert self.oracle_base >= 0 and self.game_base >= 0

    def teardown(self) -> None:
        self.gs.w3.provider.make_request("evm_revert", [self.snap])  # type: ignore[arg-type]

    # ------------------------------------------------------------ helpers

    def _send(self, fn: Any, sender: str, what: str, value: int = 0) -> bool:
        """Sends ``fn`` if its call succeeds (gas limit: the cap); counts the outcome by error name."""
        params = {"from": sender, "gas": TX_GAS_CAP, "value": value}
        try:
            fn.call(params)
        except ContractLogicError as exc:
            self.stats[f"{what}:{from_web3_error(exc).name}"] += 1
            return False
        receipt = self.gs.w3.eth.wait_for_transaction_receipt(fn.transact(params))
        if receipt["status"] != 1:
            # The call ran on the latest block; the transaction was mined in the next one, whose timestamp
            # follows the wall clock: on a loaded machine a clock can run out in between. That is the game's
            # rule, not a bug, if the same call on the state before the transaction, at the timestamp it was
            # mined with, fails too; anything else is a real inconsistency.
            self._assert_late(fn, params, receipt, what)
            self.stats[f"{what}:late"] += 1
            return False
        self.max_gas = max(self.max_gas, int(receipt["gasUsed"]))
        assert receipt["gasUsed"] <= TX_GAS_CAP, f"{what} used {receipt['gasUsed']} gas"
        for ev in self.gs.game.events.GameResolved().process_receipt(receipt, errors=DISCARD):
            rec = next(g for g in self.games if g.gid == ev["args"]["gameId"])
            rec.resolved_by_timeout = bool(ev["args"]["byTimeout"])
            self.stats["resolved:" + ("timeout" if rec.resolved_by_timeout else "step")] += 1
        self.stats[f"{what}:ok"] += 1
        return True

    def _assert_late(self, fn: Any, params: dict[str, Any], receipt: Any, what: str) -> None:
        w3 = self.gs.w3
        mined = w3.eth.get_block(receipt["blockNumber"])
        tx = {"from": params["from"], "to": fn.address, "data": fn._encode_transaction_data(),
              "gas": hex(TX_GAS_CAP), "value": hex(params["value"])}
        at_mining = {"time": hex(int(mined["timestamp"]))}
        reply = w3.provider.make_request(  # type: ignore[arg-type]
            "eth_call", [tx, hex(int(receipt["blockNumber"]) - 1), {}, at_mining])
        assert "error" in reply, f"{what} passed its call but failed on-chain, and not because time moved"

    def _open_games(self) -> list[GameRec]:
        return [g for g in self.games if g.resolved_by_timeout is None]

    def _oracle_surplus(self) -> int:
        c = self.gs.client
        owed = sum(FEE for cl in self.claims if c.status_of(cl.rid).name not in SETTLED)
        for a in self.parties:
            s = c.stake_of(a)
            owed += s.staked + s.pending + c.credits_of(a)
        return int(self.gs.w3.eth.get_balance(c.contract.address)) - owed

    def _game_surplus(self) -> int:
        g = self.gs.game
        owed = GAME_BOND * len(self._open_games()) + sum(g.functions.credits(a).call() for a in self.parties)
        return int(self.gs.w3.eth.get_balance(g.address)) - owed

    # ------------------------------------------------------------ rules

    @initialize(honest=st.booleans(), challengers=st.lists(st.booleans(), min_size=1, max_size=2),
                lie_at=st.integers(0, 59), head_start=st.integers(0, 40))
    def claim_under_games(self, honest: bool, challengers: list[bool], lie_at: int, head_start: int) -> None:
        """Every example starts with a claim and one or two games against it, side by side (more may
        follow); ``challengers``: whether each challenger is honest. The first game is played
        ``head_start`` moves on: hypothesis' swarm testing switches whole rules off per example, so an
        example without ``move``/``play`` still reaches the late phases and the step."""
        self.new_claim(honest, SEEDS[0], lie_at)
        for who, challenger_honest in enumerate(challengers):
            self.open_game(0, who, challenger_honest, lie_at + 1 + who)
        if self.games:
            self._play(self.games[0], head_start)

    @precondition(lambda self: len(self.claims) < 3)
    @rule(honest=st.booleans(), seed=st.sampled_from(SEEDS), lie_at=st.integers(0, 59))
    def new_claim(self, honest: bool, seed: int, lie_at: int) -> None:
        gs = self.gs
        rid, x = gs.request(seed)
        truth = trace_for(gs.program, x, None)
        lie = trace_for(gs.program, x, lie_at % len(gs.program.ops))
        believed = truth if honest or lie.output_bytes() == truth.output_bytes() else lie
        self._send(gs.client.submit_fn(rid, believed.output_bytes()), gs.operator, "submit")
        self.claims.append(Claim(rid, x, truth, believed))

    @precondition(lambda self: self.claims and len(self._open_games()) < 4)
    @rule(pick=st.integers(0, 2), who=st.integers(0, 2), honest=st.booleans(), lie_at=st.integers(0, 59))
    def open_game(self, pick: int, who: int, honest: bool, lie_at: int) -> None:
        claim = self.claims[pick % len(self.claims)]
        lie = trace_for(self.gs.program, claim.x, lie_at % len(self.gs.program.ops))
        # A lying challenger believes a wrong trace, or colludes with a lying operator (plays its trace).
        believed = claim.truth if honest else (claim.believed if not claim.honest and lie_at % 2 else lie)
        fn = self.gs.game.functions.open(claim.rid, claim.x)
        before = self.gs.game.functions.gameCount().call()
        if self._send(fn, self.challengers[who], "open", value=GAME_BOND):
            self.games.append(GameRec(before + 1, claim, self.challengers[who], believed))

    @precondition(lambda self: self._open_games())
    @rule(data=st.data(), side=st.sampled_from(["operator", "challenger"]),
          style=st.sampled_from(["belief", "belief", "random"]), root=st.binary(min_size=32, max_size=32),
          agree=st.booleans())
    def move(self, data: st.DataObject, side: str, style: str, root: bytes, agree: bool) -> None:
        rec = data.draw(st.sampled_from(self._open_games()))
        g = GameView.read(self.gs.game, rec.gid)
        f = self.gs.game.functions
        trace = rec.claim.believed if side == "operator" else rec.believed
        sender = self.gs.operator if side == "operator" else rec.challenger
        if style == "random" and side != rec.truthful and g.phase is Phase.BISECT:
            fn = f.bisect(rec.gid, root)
        elif style == "random" and side != rec.truthful and g.phase is Phase.CHOOSE:
            fn = f.choose(rec.gid, agree)
        else:
            fn = move_for(self.gs.game, rec.gid, trace, side)
        if fn is None:
            self.stats["move:none"] += 1
            return
        self._send(fn, sender, f"move-{side}")

    @precondition(lambda self: self._open_games())
    @rule(data=st.data(), moves=st.integers(1, 16))
    def play(self, data: st.DataObject, moves: int) -> None:
        self._play(data.draw(st.sampled_from(self._open_games())), moves)

    def _play(self, rec: GameRec, moves: int) -> None:
        """Both sides play their traces for up to ``moves`` moves (the step: the challenger first)."""
        for _ in range(moves):
            g = GameView.read(self.gs.game, rec.gid)
            if g.phase is Phase.RESOLVED:
                return
            sides = ["operator"] if g.phase in (Phase.DEFEND, Phase.BISECT) else ["challenger", "operator"]
            for side in sides:
                trace = rec.claim.believed if side == "operator" else rec.believed
                fn = move_for(self.gs.game, rec.gid, trace, side)
                if fn is not None:
                    break
            if fn is None or not self._send(fn, self.gs.operator if side == "operator" else rec.challenger,
                                            f"move-{side}"):
                return

    @rule(seconds=st.sampled_from(WARPS))
    def warp(self, seconds: int) -> None:
        self.gs.advance(seconds)

    @precondition(lambda self: self._open_games())
    @rule(data=st.data(), who=st.integers(0, 5))
    def timeout(self, data: st.DataObject, who: int) -> None:
        rec = data.draw(st.sampled_from(self._open_games()))
        g = GameView.read(self.gs.game, rec.gid)
        if self._send(self.gs.game.functions.timeout(rec.gid), self.parties[who], "timeout"):
            # The side to move ran out of time: it loses, whoever called.
            operator_to_move = g.phase in (Phase.DEFEND, Phase.BISECT)
            assert GameView.read(self.gs.game, rec.gid).challenger_won == operator_to_move, "timeout: wrong loser"

    @precondition(lambda self: self.claims)
    @rule(data=st.data())
    def finalize(self, data: st.DataObject) -> None:
        claim = data.draw(st.sampled_from(self.claims))
        held = any(g.claim is claim for g in self._open_games())
        ok = self._send(self.gs.client.finalize_fn(claim.rid, claim.believed.output_bytes()), self.gs.user,
                        "finalize-held" if held else "finalize")
        assert not (held and ok), f"claim {claim.rid} finalized while a game against it is open"

    @rule(who=st.integers(0, 5), game=st.booleans())
    def withdraw(self, who: int, game: bool) -> None:
        a = self.parties[who]
        fn = self.gs.game.functions.withdraw() if game else self.gs.client.withdraw_fn(a)
        self._send(fn, a, "withdraw-game" if game else "withdraw-oracle")

    # ------------------------------------------------------------ invariants

    @invariant()
    def solvent(self) -> None:
        self.stats["steps"] += 1
        assert self._game_surplus() == self.game_base, "game: balance != bonds of open games + credits"
        assert self._oracle_surplus() == self.oracle_base, "oracle: balance != stakes + credits + escrow"

    @invariant()
    def claims_and_games_agree(self) -> None:
        f = self.gs.game.functions
        for claim in self.claims:
            games = [g for g in self.games if g.claim is claim]
            views = [GameView.read(self.gs.game, g.gid) for g in games]
            still_open = sum(v.phase is not Phase.RESOLVED for v in views)
            assert f.openGames(claim.rid).call() == still_open
            status = self.gs.client.status_of(claim.rid).name
            if status == "FINALIZED":
                assert still_open == 0, f"claim {claim.rid} finalized with {still_open} open games"
            if status not in SETTLED:
                # The oracle holds the claim exactly while a game against it is open: a finalize after
                # the window (an eth_call with the block time moved past it) fails iff one is.
                held = not self._finalizes_after_window(claim)
                assert held == (still_open > 0), f"claim {claim.rid}: held={held} with {still_open} open games"
            won = [g for g, v in zip(games, views, strict=True) if v.phase is Phase.RESOLVED and v.challenger_won]
            assert (status == "FRAUD_PROVEN") == bool(won), f"claim {claim.rid}: {status}, won games {won}"
            for g, v in zip(games, views, strict=True):
                if v.phase is Phase.RESOLVED and g.truthful is not None:
                    lost = v.challenger_won != (g.truthful == "challenger")
                    assert not lost or g.resolved_by_timeout, f"game {g.gid}: the truthful {g.truthful} lost a step"

    @invariant()
    def truthful_side_can_win(self) -> None:
        f = self.gs.game.functions
        for rec in self._open_games():
            side = rec.truthful
            if side is None:
                continue
            g = GameView.read(self.gs.game, rec.gid)
            mover = "operator" if g.phase in (Phase.DEFEND, Phase.BISECT) else "challenger"
            account = self.gs.operator if side == "operator" else rec.challenger
            if self._accepted(f.timeout(rec.gid), account):
                # The clock of the side to move ran out: the timeout is accepted (it wins unless it was its
                # own clock: silence loses, which is the rule).
                self.stats["checked:timeout-available"] += 1
                continue
            if mover == side or (g.phase is Phase.STEP and side == "operator"):
                fn = move_for(self.gs.game, rec.gid, rec.claim.truth, side)
                assert fn is not None, f"game {rec.gid}: the truthful {side} has no move in {g.phase.name}"
                assert self._accepted(fn, account), f"game {rec.gid}: the truthful {side}'s move is refused"
                self.stats["checked:truthful-move"] += 1

    def _finalizes_after_window(self, claim: Claim) -> bool:
        w3, client = self.gs.w3, self.gs.client
        data = client.finalize_fn(claim.rid, claim.believed.output_bytes())._encode_transaction_data()
        tx = {"from": self.gs.user, "to": client.contract.address, "data": data, "gas": hex(TX_GAS_CAP)}
        later = {"time": hex(int(w3.eth.get_block("latest")["timestamp"]) + WINDOW + 1)}
        reply = w3.provider.make_request("eth_call", [tx, "latest", {}, later])  # type: ignore[arg-type]
        return "result" in reply

    def _accepted(self, fn: Any, sender: str) -> bool:
        try:
            fn.call({"from": sender, "gas": TX_GAS_CAP})
        except ContractLogicError:
            return False
        return True


RANDOM = os.environ.get("GAME_FUZZ_RANDOM") == "1"
SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
                    derandomize=not RANDOM, suppress_health_check=list(HealthCheck))


def test_game_state_machine(gs: GameSystem) -> None:
    stats: Counter[str] = Counter()
    machine = type("GameMachineRun", (GameMachine,), {"gs": gs, "stats": stats})
    run_state_machine_as_test(machine, settings=SETTINGS)
    print("\ngame fuzz:", dict(sorted(stats.items())))
    # The run must have played games to their end both ways, not only reverted its way through.
    for path in ("open:ok", "resolved:step", "move-operator:ok", "move-challenger:ok"):
        assert stats[path] > 0, f"the fuzz run never reached {path}: {dict(stats)}"
