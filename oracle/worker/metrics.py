"""Prometheus metrics of one node, on their own registry (no global state; tests make as many as they like)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests_seen = Counter("oracle_worker_requests_seen", "Request events ingested", registry=r)
        self.requests_executed = Counter("oracle_worker_requests_executed", "Inferences completed", registry=r)
        self.requests_submitted = Counter("oracle_worker_requests_submitted", "Results attested on-chain",
                                          registry=r)
        self.requests_failed = Counter("oracle_worker_requests_failed", "Jobs given up", ["reason"], registry=r)
        self.requests_skipped = Counter("oracle_worker_requests_skipped", "Jobs skipped", ["reason"], registry=r)
        self.requests_lost = Counter("oracle_worker_requests_lost", "Requests another operator answered first",
                                     registry=r)
        self.assignments = Gauge("oracle_worker_assignments", "Requests assigned to this node (exclusive period):"
                                 " all, answered by it, missed (final without its answer)", ["kind"], registry=r)
        self.requests_finalized = Counter("oracle_worker_requests_finalized", "Own results finalized", registry=r)
        self.txs_sent = Counter("oracle_worker_txs_sent", "Transactions broadcast", ["kind"], registry=r)
        self.txs_replaced = Counter("oracle_worker_txs_replaced", "Fee-bumped replacements", registry=r)
        self.txs_resent = Counter("oracle_worker_txs_resent", "Transactions re-sent after a reorg dropped them",
                                  registry=r)
        self.reorgs = Counter("oracle_worker_reorgs", "Reorgs detected", registry=r)
        self.games = Counter("oracle_worker_games", "Dispute games against our claims: opened, won, lost",
                             ["event"], registry=r)
        self.game_moves = Counter("oracle_worker_game_moves", "Dispute-game transactions sent", ["move"],
                                  registry=r)
        self.rpc_errors = Counter("oracle_worker_rpc_errors", "Transient RPC failures (retried)", registry=r)
        self.inference_seconds = Histogram("oracle_worker_inference_seconds", "Inference wall time per job",
                                           buckets=_LATENCY_BUCKETS, registry=r)
        self.submission_seconds = Histogram("oracle_worker_submission_seconds", "Broadcast to receipt",
                                            buckets=_LATENCY_BUCKETS, registry=r)
        self.balance_wei = Gauge("oracle_worker_balance_wei", "Operator account balance", registry=r)
        self.stake_wei = Gauge("oracle_worker_stake_wei", "Operator stake", ["kind"], registry=r)
        self.credits_wei = Gauge("oracle_worker_credits_wei", "Withdrawable credits", registry=r)
        self.cursor_block = Gauge("oracle_worker_cursor_block", "Last processed block", registry=r)
        self.model_parked = Gauge("oracle_worker_model_parked", "1 while a model is parked (too slow; the "
                                  "operator un-parks it)", ["model_id"], registry=r)
        self.inference_timeouts = Counter("oracle_worker_inference_timeouts", "Inputs past their model's time "
                                          "budget", ["model_id"], registry=r)
        self.lanes_busy = Gauge("oracle_worker_lanes_busy", "Inference lanes running a batch", registry=r)
        self.binding_compilations = Gauge("oracle_worker_binding_compilations", "EXACT files compiled to check "
                                          "their binding since start", registry=r)
        self.binding_cache_hits = Gauge("oracle_worker_binding_cache_hits", "EXACT bindings answered from the "
                                        "persisted verdicts since start", registry=r)
        self.paused = Gauge("oracle_worker_paused", "1 while submissions are paused", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
