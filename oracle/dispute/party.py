"""What both daemons need to play the dispute game (docs/protocol.md, "Dispute game (v2)") from the chain alone.

The operator's node (:mod:`oracle.worker.defender`) and the challenger daemon (:mod:`oracle.challenger.games`)
keep only bookkeeping in their SQLite files: which games are theirs, the transaction in flight. Everything a
move depends on is read again from the chain before each move (the game's phase, interval and roots) or
recomputed deterministically (the request's input from its event, the program from its chunks, the trace from
the reference interpreter), so a ``kill -9``, a lost database row or a reorg can only delay a move, never make
a party play a wrong one. The decision itself is :func:`oracle.dispute.actors.move_for`, the same function the
tests' scripted actors play with; this module adds the timeout claim against a silent opponent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.dispute.actors import TX_GAS_CAP, GameView, Phase, move_for
from oracle.errors import OracleError
from oracle.profile.binding import read_onchain_program
from oracle.profile.program import Program, decode
from oracle.profile.trace import Tamper, Trace

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

__all__ = ["TX_GAS_CAP", "GameView", "Phase", "Party", "game_address", "game_contract"]


def game_address(client: OracleClient) -> str | None:
    """The dispute game the oracle trusts (its immutable ``DISPUTE_GAME``), None if it has none (or the oracle
    predates the game and has no such getter)."""
    try:
        addr = str(client.contract.functions.DISPUTE_GAME().call())
    except (ContractLogicError, BadFunctionCallOutput):
        return None
    return None if int(addr, 16) == 0 else Web3.to_checksum_address(addr)


def game_contract(w3: Web3, address: str) -> Contract:
    """The `DisputeGame` at ``address``; struct results (``getGame``) come back as named tuples."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifacts.load("DisputeGame").abi,
                           decode_tuples=True)


@dataclass
class Party:
    """One side (``role`` "operator" or "challenger", account ``me``) of every game it is in on one deployment.

    ``tamper`` is a test-only fault injection (a lying party's trace, :func:`oracle.profile.trace.perturb_at`);
    daemons leave it None and play the reference's trace."""

    client: OracleClient
    game: Contract
    me: str
    role: str
    tamper: Tamper | None = None

    def __post_init__(self) -> None:
        self._programs: dict[int, Program] = {}
        self._traces: dict[int, Trace] = {}

    # ------------------------------------------------------------------ discovery
    def games_from(self, first: int) -> tuple[list[tuple[int, int]], int]:
        """(game id, request id) of the games from id ``first`` on in which we are ``role``; and the count."""
        count = int(self.game.functions.gameCount().call())
        ours = []
        for gid in range(first, count + 1):
            g = GameView.read(self.game, gid)
            if self._mine(g):
                ours.append((gid, g.request_id))
        return ours, count

    def _mine(self, g: GameView) -> bool:
        who = g.operator if self.role == "operator" else g.challenger
        return str(who).lower() == self.me.lower()

    def view(self, game_id: int) -> GameView | None:
        """The game as the chain has it now, None if it is not (or no longer, after a reorg) ours."""
        g = GameView.read(self.game, game_id)
        return g if g.phase is not Phase.NONE and self._mine(g) else None

    # ------------------------------------------------------------------ what to play
    def trace(self, request_id: int, input_bytes: bytes | None = None) -> Trace:
        """The trace we defend or attack for ``request_id``: the reference on the request's input (cached)."""
        if request_id not in self._traces:
            req = self.client.get_request(request_id)
            data = input_bytes if input_bytes is not None else self.request_input(request_id)
            self._traces[request_id] = Trace.from_input_bytes(self.program(req.model_id), data, self.tamper)
        return self._traces[request_id]

    def program(self, model_id: int) -> Program:
        if model_id not in self._programs:
            self._programs[model_id] = decode(read_onchain_program(self.client, model_id))
        return self._programs[model_id]

    def request_input(self, request_id: int) -> bytes:
        logs = self.client.contract.events.InferenceRequested().get_logs(
            from_block=0, to_block="latest", argument_filters={"requestId": request_id})
        if not logs:
            raise OracleError(f"request {request_id:#x} has no InferenceRequested event; check the RPC endpoint")
        return bytes(logs[0]["args"]["input"])

    def next_call(self, game_id: int, g: GameView, input_bytes: bytes | None = None) -> tuple[str, Any] | None:
        """(what, call) of our next transaction in game ``game_id`` (read as ``g``), or None (not our move).

        Our move if we have one; otherwise, if the opponent must move and its clock has run out, ``timeout``
        (a silent opponent loses). Done games need nothing."""
        if g.phase in (Phase.NONE, Phase.RESOLVED):
            return None
        fn = move_for(self.game, game_id, self.trace(g.request_id, input_bytes), self.role)
        if fn is not None:
            return g.phase.name.lower(), fn
        who, left = self.game.functions.toMove(game_id).call()
        if str(who).lower() != self.me.lower() and int(left) == 0:
            return "timeout", self.game.functions.timeout(game_id)
        return None

    def forget(self, request_id: int) -> None:
        self._traces.pop(request_id, None)

    # ------------------------------------------------------------------ money
    def credits(self) -> int:
        return int(self.game.functions.credits(Web3.to_checksum_address(self.me)).call())

    def withdraw_call(self) -> Any:
        return self.game.functions.withdraw()
