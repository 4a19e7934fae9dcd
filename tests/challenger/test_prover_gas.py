"""The proof transaction's gas limit never exceeds the EIP-7825 per-transaction cap when the proof fits it."""

from __future__ import annotations

from pathlib import Path

from oracle.chain.gas import gas_limit
from oracle.challenger.metrics import ChallengerMetrics
from oracle.challenger.prover import Prover
from oracle.challenger.store import Store

CAP = 16_777_216


def _prover(tmp_path: Path, **kw: int) -> Prover:
    # Only the gas policy is exercised: no chain, sender or inputs are touched.
    return Prover(None, Store(tmp_path / "c.sqlite3"), None, ChallengerMetrics(), lambda _c: b"",  # type: ignore[arg-type]
                  max_tx_gas=CAP, **kw)


def test_margin_below_the_cap(tmp_path: Path) -> None:
    assert _prover(tmp_path)._gas_limit(1_000_000) == gas_limit(1_000_000) == 1_250_000


def test_a_proof_near_the_cap_is_sent_at_the_cap_not_over_it(tmp_path: Path) -> None:
    # A model registered right at the bound, with the requester's maximum callback: estimate x 1.25 would be
    # ~20M, a transaction an Osaka node refuses outright.
    assert _prover(tmp_path)._gas_limit(16_700_000) == CAP
    assert _prover(tmp_path)._gas_limit(CAP) == CAP


def test_over_the_cap_only_the_estimate_is_tried(tmp_path: Path) -> None:
    assert _prover(tmp_path)._gas_limit(20_000_000) == 20_000_000


def test_a_configured_limit_is_capped_too(tmp_path: Path) -> None:
    assert _prover(tmp_path, challenge_gas=30_000_000)._gas_limit(2_000_000) == CAP
