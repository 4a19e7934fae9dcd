"""Prometheus metrics of the challenger (own registry, so tests can run several daemons).

``challenger_alarms_total{kind}`` is the one to page on: ``unprovable`` (a wrong result the chain will not
let us prove), ``quarantined`` (a claim whose model's program cannot be re-executed within the limits),
``onnx_quarantined`` / ``onnx_unbound`` (a model file that blew the limits or does not compile to its program),
``chain_disagrees`` (the chain says a result we found wrong is correct), ``proof_over_tx_cap``, ``game_lost``
(a dispute game we opened ended for the operator). ``challenger_games_total{event}`` counts our games
(``opened``, ``won``, ``lost``), ``challenger_game_moves_total{move}`` the game transactions sent.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ChallengerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.claims_seen = Counter("challenger_claims_seen", "Attested results seen", registry=r)
        self.verified_correct = Counter("challenger_verified_correct", "Results re-executed and correct",
                                        registry=r)
        self.frauds_found = Counter("challenger_frauds_found", "Wrong results found by re-execution", registry=r)
        self.challenges_sent = Counter("challenger_challenges_sent", "Challenge transactions sent", registry=r)
        self.challenges_resent = Counter("challenger_challenges_resent",
                                         "Challenges sent again (dropped, stuck, reorganised away)", ["reason"],
                                         registry=r)
        self.challenges_won = Counter("challenger_challenges_won", "Challenges that proved fraud", registry=r)
        self.missed = Counter("challenger_missed", "Wrong results whose window closed before we acted", registry=r)
        self.alarms = Counter("challenger_alarms", "Conditions that need an operator", ["kind"], registry=r)
        self.nonce_gaps_filled = Counter("challenger_nonce_gaps_filled",
                                         "No-op transactions sent so later challenges are not stuck behind a gap",
                                         registry=r)
        self.reorgs = Counter("challenger_reorgs", "Reorgs rolled back to their fork point", registry=r)
        # the shared transaction manager's counters (oracle.chain.txmanager.TxMetrics), every kind of ours
        self.txs_sent = Counter("challenger_txs_sent", "Transactions signed and broadcast", ["kind"], registry=r)
        self.txs_replaced = Counter("challenger_txs_replaced", "Fee-bumped replacements", registry=r)
        self.txs_resent = Counter("challenger_txs_resent", "Transactions re-sent after a reorg dropped them",
                                  registry=r)
        self.submission_seconds = Histogram("challenger_tx_seconds", "Broadcast to receipt", registry=r)
        self.errors = Counter("challenger_errors", "Errors while polling or verifying", ["kind"], registry=r)
        self.verify_seconds = Histogram("challenger_verify_seconds", "Time to re-execute one batch of claims",
                                        registry=r)
        self.margin_seconds = Histogram(
            "challenger_margin_seconds", "Seconds left in the window when a challenge was sent", registry=r,
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf")))
        self.games = Counter("challenger_games", "Dispute games of ours: opened, won, lost", ["event"], registry=r)
        self.game_moves = Counter("challenger_game_moves", "Dispute-game transactions sent", ["move"], registry=r)
        self.games_playing = Gauge("challenger_games_playing", "Dispute games of ours still open", registry=r)
        self.cursor = Gauge("challenger_cursor_block", "Last confirmed block processed", registry=r)
        self.in_flight = Gauge("challenger_challenges_in_flight", "Challenges sent and not yet mined", registry=r)
        self.quarantined_models = Gauge("challenger_quarantined_models",
                                        "Models whose program or file is quarantined", registry=r)
