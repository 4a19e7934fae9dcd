"""A model whose program cannot be re-executed within the limits is quarantined, reported, never stops the
daemon, and is tried again once its quarantine ends.

The limits are set below what the digits program needs (a zero wall-time limit), which is what a hostile
program does to the real limits.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from oracle.chain.deploy import Deployment
from oracle.challenger.daemon import Challenger, ChallengerConfig
from oracle.challenger.store import ClaimState, Store
from oracle.challenger.verify import ClaimVerifier
from oracle.runtime.model_store import ModelStore
from oracle.runtime.sandbox import SandboxLimits
from tests.challenger.harness import Env, answer, deploy, env_of

WINDOW = 300


@pytest.fixture(scope="module")
def deployed(session_w3: Web3) -> tuple[Deployment, int]:
    return deploy(session_w3, WINDOW)


@pytest.fixture
def env(deployed: tuple[Deployment, int], w3: Web3) -> Iterator[Env]:
    yield env_of(w3, *deployed, WINDOW)


def challenger(env: Env, tmp_path: Path, limits: SandboxLimits, quarantine_seconds: float) -> Challenger:
    models = ModelStore(tmp_path / "models", max_model_bytes=64 * 2**20, max_tensor_bytes=16 * 2**20)
    return Challenger(env.client, Store(tmp_path / "challenger.db"), ClaimVerifier(env.client, models, limits),
                      env.challenger, ChallengerConfig(start_block=env.deployment.block,
                                                       quarantine_seconds=quarantine_seconds))


def run_once(ch: Challenger) -> None:
    ch.setup()
    while not ch.poll():
        pass
    ch.process()


def test_model_over_the_limits_is_quarantined_then_retried(env: Env, tmp_path: Path) -> None:
    wrong = answer(env, 0)
    ch = challenger(env, tmp_path, SandboxLimits(timeout=0.0), quarantine_seconds=3600)
    try:
        run_once(ch)  # warm-up hits the limit: quarantined, and set-up carries on
        claim = ch.store.claim(wrong)
        assert claim is not None and claim.state is ClaimState.QUARANTINED, claim
        assert "timeout" in (claim.error or "")
        status, reason = ch.store.models()[(env.digits_id, "program")]
        assert status == "quarantined" and "timeout" in (reason or "")
        assert ch.metrics.alarms.labels(kind="quarantined")._value.get() == 1  # type: ignore[attr-defined]
        assert ch.metrics.quarantined_models._value.get() == 1  # type: ignore[attr-defined]
    finally:
        ch.close()
        ch.store.close()

    # Restarted with sane limits while the quarantine lasts: it starts, touches nothing of that model.
    again = challenger(env, tmp_path, SandboxLimits(), quarantine_seconds=3600)
    try:
        run_once(again)
        assert again.store.claim(wrong).state is ClaimState.QUARANTINED  # type: ignore[union-attr]
        assert again.verifier.sandbox.generation == 0  # no child was even started for it
    finally:
        again.close()
        again.store.close()

    # Once the quarantine is over, the claims still in their window are verified again, and proven.
    later = challenger(env, tmp_path, SandboxLimits(), quarantine_seconds=0)
    try:
        run_once(later)
        assert later.store.claim(wrong).state is ClaimState.PROVEN  # type: ignore[union-attr]
        assert env.client.status_of(wrong).name == "FRAUD_PROVEN"
        assert (env.digits_id, "program") not in later.store.models()
    finally:
        later.close()
        later.store.close()
