"""The challenger plays the dispute game to its end (docs/protocol.md, "Dispute game (v2)").

A ``wrong`` claim whose model's one-transaction proof does not fit (the registry's ``proofGasBound`` is over
the cap, so the model is game-provable) is handed here instead of to the prover (claim state ``game``). Each
daemon round, :meth:`GamePlayer.step`:

- **opens** a game for it, posting ``GAME_BOND``, within the risk settings (``max_game_bond`` per game,
  ``max_open_games`` at once, enough balance left) while the claim is still disputable. Before opening it looks
  on-chain for a game we already opened against the claim (``GameOpened`` by us), so a restart after the
  ``open`` was broadcast never posts a second bond;
- **plays** each of our games from the chain: the move :func:`oracle.dispute.actors.move_for` gives for the
  reference's trace (``choose`` on each midpoint, the one-step proof), or ``timeout`` against a silent operator;
- **settles**: a won game makes the claim ``proven`` (the oracle slashed the operator), a lost one
  ``game_lost`` (an alarm); the bonds won are withdrawn.

At most one game transaction is sent per round, and only when none of ours is in flight, so each move is
decided on the state the previous one produced. The transactions go through the challenger's shared manager
(:class:`oracle.challenger.txs.ChallengeTxs`): stored before broadcast, replaced on their nonce with higher fees
when stuck past the fee policy's ``stuck_after``, re-sent after a reorg; the game itself is read from the chain
every round (the ``games`` rows, :mod:`oracle.dispute.book`, say which games are ours).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from web3 import Web3
from web3.exceptions import ContractLogicError

from oracle.chain.client import OracleClient
from oracle.chain.gas import gas_limit
from oracle.chain.reverts import from_web3_error
from oracle.challenger.metrics import ChallengerMetrics
from oracle.challenger.store import Claim, ClaimState, Store, claim_state_for
from oracle.challenger.txs import ChallengeTxs
from oracle.dispute.actors import Phase
from oracle.dispute.book import GameBook, GameRow
from oracle.dispute.party import TX_GAS_CAP, Party, game_address, game_contract
from oracle.lifecycle import is_challengeable

log = structlog.get_logger("oracle.challenger.games")


@dataclass(frozen=True)
class GamePolicy:
    max_game_bond: int = 10**18  # wei: a game needing a larger bond is not opened (an alarm)
    max_open_games: int = 8  # games of ours running at once


class GamePlayer:
    def __init__(self, client: OracleClient, store: Store, txs: ChallengeTxs, input_of: Callable[[Claim], bytes],
                 policy: GamePolicy | None = None, metrics: ChallengerMetrics | None = None) -> None:
        self.client = client
        self.metrics = metrics or ChallengerMetrics()
        self.store = store
        self.txs = txs
        self.input_of = input_of
        self.policy = policy or GamePolicy()
        self.book = GameBook(store.sql)
        address = game_address(client)
        self.party = None if address is None else Party(client, game_contract(client.w3, address),
                                                        txs.address, "challenger")
        self.bond = 0 if self.party is None else int(self.party.game.functions.GAME_BOND().call())
        self._proof_gas: dict[int, int] = {}

    def game_provable(self, model_id: int) -> bool:
        """The registry says the model's one-transaction proof does not fit, and there is a game to play."""
        if self.party is None:
            return False
        if model_id not in self._proof_gas:
            self._proof_gas[model_id] = self.client.proof_gas_bound(model_id)[0]
        return self._proof_gas[model_id] > TX_GAS_CAP

    def adopt(self) -> int:
        """Hands every ``wrong`` claim of a game-provable model to the game; returns how many."""
        n = 0
        for c in self.store.claims([ClaimState.WRONG]):
            if self.game_provable(c.model_id):
                self.book.add(c.request_id, 0, "opening", reopen=True)
                self.store.set_state(c.request_id, ClaimState.GAME)
                log.warning("fraud_needs_game", request_id=hex(c.request_id), operator=c.operator)
                n += 1
        return n

    # ------------------------------------------------------------------ one round
    def step(self) -> int:
        """Plays at most one transaction of one of our games; returns how many were sent (0 or 1)."""
        if self.party is None or self.txs.busy:  # wait for ours in flight (the manager replaces a stuck one)
            return 0
        rows = self.book.rows(open_only=True)
        self.metrics.games_playing.set(sum(r.state == "playing" for r in rows))
        for row in rows:
            claim = self.store.claim(row.request_id)
            if claim is None:
                continue
            sent = self._open(row, claim) if row.game_id == 0 else self._play(row, claim)
            if sent:
                return 1
        if self.book.rows(limit=1) and self.party.credits() > 0:
            return self._send(self.party.withdraw_call(), "withdraw")
        return 0

    def _open(self, row: GameRow, claim: Claim) -> int:
        assert self.party is not None
        found = self._our_game(row.request_id)
        if found:
            self.book.update(row.request_id, 0, state="playing", new_game_id=found)
            self.metrics.games.labels(event="opened").inc()
            log.warning("game_opened", game=found, request_id=hex(row.request_id))
            return self._play(GameRow(row.request_id, found, "playing", row.moves, row.tx_hash, None), claim)
        status = self.client.status_of(row.request_id)
        if not is_challengeable(status):
            state = claim_state_for(status, proven_by_us=False, refused=False)
            self._end(row, claim, "lost", state, f"claim is {status.name} before our game opened")
            return 0
        if self.bond > self.policy.max_game_bond:
            self._end(row, claim, "lost", ClaimState.GAME_LOST,
                      f"game bond {self.bond} wei is over max_game_bond {self.policy.max_game_bond}")
            return 0
        playing = sum(r.state == "playing" for r in self.book.rows(open_only=True))
        if playing >= self.policy.max_open_games:
            return 0
        fn = self.party.game.functions.open(row.request_id, self.input_of(claim))
        return self._send(fn, "open", row, value=self.bond)

    def _our_game(self, request_id: int) -> int:
        assert self.party is not None
        logs = self.party.game.events.GameOpened().get_logs(
            from_block=max(0, claim_block(self.store, request_id)), to_block="latest",
            argument_filters={"requestId": request_id, "challenger": Web3.to_checksum_address(self.txs.address)})
        ids = [int(e["args"]["gameId"]) for e in logs]
        return max((i for i in ids if self.party.view(i) is not None), default=0)

    def _play(self, row: GameRow, claim: Claim) -> int:
        assert self.party is not None
        g = self.party.view(row.game_id)
        if g is None:  # a reorg took our open away: open again (after looking for it)
            self.book.update(row.request_id, row.game_id, state="opening", new_game_id=0)
            return 0
        if g.phase is Phase.RESOLVED:
            won = g.challenger_won
            self._end(row, claim, "won" if won else "lost", ClaimState.PROVEN if won else ClaimState.GAME_LOST,
                      None if won else "the game ended for the operator")
            return 0
        nxt = self.party.next_call(row.game_id, g, self.input_of(claim))
        if nxt is None:
            return 0
        what, fn = nxt
        return self._send(fn, what, row)

    def _end(self, row: GameRow, claim: Claim, state: str, claim_state: ClaimState, error: str | None) -> None:
        assert self.party is not None
        self.book.update(row.request_id, row.game_id, state=state, error=error)
        self.store.set_state(claim.request_id, claim_state, error=error, settled=True)
        self.metrics.games.labels(event=state).inc()
        if state == "lost":
            self.metrics.alarms.labels(kind="game_lost").inc()
        self.party.forget(row.request_id)
        (log.warning if state == "won" else log.error)("game_ended", game=row.game_id, won=state == "won",
                                                       request_id=hex(row.request_id), reason=error)

    def _send(self, fn: Any, what: str, row: GameRow | None = None, value: int = 0) -> int:
        me = self.txs.address
        try:
            gas = min(gas_limit(int(fn.estimate_gas({"from": me, "value": value}))), TX_GAS_CAP)
        except ContractLogicError as exc:
            log.warning("game_move_refused", move=what, error=str(from_web3_error(exc)))
            return 0
        if value and self.client.w3.eth.get_balance(Web3.to_checksum_address(me)) < value + gas * 10**9:
            log.error("game_budget", move=what, needed=value, error="balance too low to post the game bond")
            return 0
        try:
            s = self.txs.send(what, fn, [row.request_id] if row else [], None, self.txs.rpc.head(), gas=gas,
                              value=value)
        except Exception as exc:  # noqa: BLE001 - stored already: the manager re-broadcasts it
            log.warning("game_send_failed", move=what, error=str(exc))
            return 0
        if s is None:
            return 0
        if row is not None:
            self.book.update(row.request_id, row.game_id, tx_hash=s.tx_hash)
        self.metrics.game_moves.labels(move=what).inc()
        log.info("game_move", move=what, game=row.game_id if row else None, tx_hash=s.tx_hash)
        return 1


def claim_block(store: Store, request_id: int) -> int:
    """The block the claim was seen in (a game against it cannot be older)."""
    c = store.claim(request_id)
    return c.block_number if c is not None else 0
