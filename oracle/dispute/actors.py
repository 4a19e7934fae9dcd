"""Game actors: an operator defending its trace and a challenger attacking a claim, move by move.

Each actor holds the :class:`~oracle.profile.trace.Trace` it believes (an honest one runs the reference;
a lying one a tampered trace) and answers the game's current phase from it. Every transaction is sent
with the per-transaction gas cap as its gas limit (EIP-7825), so a move that needed more would fail
here exactly as on mainnet; the receipts are kept so callers can check and report the gas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from oracle.chain.reverts import from_web3_error
from oracle.profile.trace import Trace

TX_GAS_CAP = 16_777_216


class Phase(IntEnum):
    NONE = 0
    DEFEND = 1
    BISECT = 2
    CHOOSE = 3
    STEP = 4
    RESOLVED = 5


@dataclass
class GameView:
    request_id: int
    challenger: str
    operator: str
    lo: int
    hi: int
    phase: Phase
    challenger_won: bool
    root_lo: bytes
    root_hi: bytes
    root_mid: bytes

    @classmethod
    def read(cls, game: Contract, game_id: int) -> GameView:
        g = game.functions.getGame(game_id).call()  # a named tuple: the game contract decodes tuples
        return cls(int(g.requestId), g.challenger, g.operator, int(g.lo), int(g.hi), Phase(g.phase),
                   bool(g.challengerWon), bytes(g.rootLo), bytes(g.rootHi), bytes(g.rootMid))


@dataclass
class Actor:
    """One party: ``role`` is "operator" or "challenger"; ``trace`` what it believes."""

    w3: Web3
    game: Contract
    account: str
    trace: Trace
    role: str
    receipts: list[Any] = field(default_factory=list)

    def _send(self, fn: Any, value: int = 0) -> Any:
        params = {"from": self.account, "gas": TX_GAS_CAP, "value": value}
        try:
            fn.call(params)  # a move that would revert raises its decoded custom error here
        except ContractLogicError as exc:
            raise from_web3_error(exc) from exc
        tx = fn.transact({"from": self.account, "gas": TX_GAS_CAP, "value": value})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        self.receipts.append(receipt)
        if receipt["status"] != 1:
            raise RuntimeError(f"{self.role} move failed: {receipt['transactionHash'].hex()}")
        return receipt

    def open(self, request_id: int, input_bytes: bytes, bond: int) -> int:
        receipt = self._send(self.game.functions.open(request_id, input_bytes), value=bond)
        ev = self.game.events.GameOpened().process_receipt(receipt)
        return int(ev[0]["args"]["gameId"])

    def move(self, game_id: int) -> bool:
        """Plays this actor's move if it has one; returns whether it sent a transaction."""
        fn = move_for(self.game, game_id, self.trace, self.role)
        if fn is None:
            return False
        self._send(fn)
        return True


def move_for(game: Contract, game_id: int, t: Trace, role: str) -> Any:
    """The call (a web3 ContractFunction) ``role`` ("operator" or "challenger") makes now in game ``game_id``,
    believing trace ``t``, or None when it has no move. Read from the chain each time: a party that asks
    again after its move was mined (or after a restart) gets the next move, never the same one twice."""
    g = GameView.read(game, game_id)
    f = game.functions
    if role == "operator":
        if g.phase is Phase.DEFEND:
            out = t.program.output_id
            return f.defend(game_id, t.root(t.num_steps), t.output_values(), t.proof(t.num_steps, out))
        if g.phase is Phase.BISECT:
            return f.bisect(game_id, t.root((g.lo + g.hi) // 2))
        if g.phase is Phase.STEP and t.root(g.lo) == g.root_lo and t.root(g.hi) == g.root_hi:
            # The step is permissionless: an operator whose trace is the disputed one ends it at once.
            return f.step(game_id, t.step_proof(g.lo).as_tuple())
        return None
    if g.phase is Phase.CHOOSE:
        return f.choose(game_id, t.root((g.lo + g.hi) // 2) == g.root_mid)
    if g.phase is Phase.STEP and t.root(g.lo) == g.root_lo:
        # (A challenger whose trace is not the agreed state cannot prove the step: it stays silent.)
        return f.step(game_id, t.step_proof(g.lo).as_tuple())
    return None


def play(game: Contract, game_id: int, operator: Actor | None, challenger: Actor | None,
         max_moves: int = 200) -> GameView:
    """Plays the game to its end, or until neither present actor has a move (a silent side)."""
    for _ in range(max_moves):
        g = GameView.read(game, game_id)
        if g.phase is Phase.RESOLVED:
            return g
        # The challenger moves first in the step phase (it is its clock); then the operator.
        moved = False
        for actor in (challenger, operator):
            if actor is not None and actor.move(game_id):
                moved = True
                break
        if not moved:
            return g
    raise RuntimeError("game did not end")
