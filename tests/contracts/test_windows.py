"""Challenge and finalize bounds never overlap: challenge while now < deadline, finalize when now >= deadline."""

from __future__ import annotations

from tests.contracts.conftest import INPUT, OUTPUT, TIMEOUT, WINDOW, System


def submitted(system: System) -> tuple[int, int]:
    rid = system.request()
    system.submit(rid)
    return rid, system.submitted_at(rid) + WINDOW


def test_finalize_reverts_at_deadline_minus_one_and_succeeds_at_deadline(system: System) -> None:
    rid, deadline = submitted(system)
    err = system.chain.reverts(system.oracle.functions.finalize(rid, OUTPUT), system.user, "ChallengeWindowOpen",
                               at=deadline - 1)
    assert err.args_decoded == (rid, deadline)
    system.chain.ok(system.oracle.functions.finalize(rid, OUTPUT), system.user, at=deadline)


def test_challenge_passes_window_check_at_deadline_minus_one_and_reverts_at_deadline(system: System) -> None:
    # The model is ATTESTED, so inside the window the challenge reaches the mode check (NotChallengeable);
    # at the deadline it stops at the window check first. EXACT challenges are tested with the verifier.
    rid, deadline = submitted(system)
    system.chain.reverts(system.oracle.functions.challenge(rid, INPUT), system.challenger, "NotChallengeable",
                         at=deadline - 1)
    err = system.chain.reverts(system.oracle.functions.challenge(rid, INPUT), system.challenger,
                               "ChallengeWindowClosed", at=deadline)
    assert err.args_decoded == (rid, deadline)


def test_status_flips_exactly_at_the_deadline(system: System) -> None:
    rid, deadline = submitted(system)
    system.chain.mine(deadline - 1)
    assert system.client.status_of(rid).name == "SUBMITTED"
    system.chain.mine(deadline)
    assert system.client.status_of(rid).name == "FINALIZABLE"


def test_second_finalize_and_challenge_after_finalize_revert(system: System) -> None:
    rid, _ = submitted(system)
    system.finalize(rid)
    system.chain.reverts(system.oracle.functions.finalize(rid, OUTPUT), system.user, "AlreadyFinalized")
    system.chain.reverts(system.oracle.functions.challenge(rid, INPUT), system.challenger, "AlreadyFinalized")


def test_finalize_unknown_expired_and_wrong_output(system: System) -> None:
    system.chain.reverts(system.oracle.functions.finalize(42, OUTPUT), system.user, "UnknownRequest")
    expired = system.request()
    system.chain.mine(system.client.get_request(expired).requested_at + TIMEOUT)
    system.chain.reverts(system.oracle.functions.finalize(expired, OUTPUT), system.user, "NotSubmitted")
    system.chain.reverts(system.oracle.functions.challenge(expired, INPUT), system.user, "NotSubmitted")
    rid, deadline = submitted(system)
    system.chain.reverts(system.oracle.functions.finalize(rid, bytes(32)), system.user, "OutputMismatch",
                         at=deadline)


def test_challenge_with_wrong_input_reverts(system: System) -> None:
    rid, deadline = submitted(system)
    system.chain.reverts(system.oracle.functions.challenge(rid, bytes(64)), system.challenger, "InputMismatch")
