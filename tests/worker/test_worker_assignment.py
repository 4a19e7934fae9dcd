"""Nodes under exclusive assignment: each answers what is assigned to it at once and leaves the rest alone
until the exclusive period is over (no reverted race, no wasted inference); a request whose assignee is
absent is answered by another node after the period; the metrics show assigned / answered / missed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.types import Mode, Status
from oracle.jobstate import JobState
from tests.worker.conftest import (
    OPERATOR_INDEX,
    TIMEOUT,
    UNBONDING,
    WINDOW,
    WorkerSystem,
    expected_int_output,
    int_input,
    int_model,
    wait_for,
)

EXCLUSIVE = 40


@pytest.fixture
def aws(w3: Web3, accounts: list[str], devnet: Any, tmp_path: Path) -> WorkerSystem:
    """A system with assignment on and three staked operators (5, 6 run nodes; 7 is absent)."""
    params = DeployParams(challenge_window=WINDOW, request_timeout=TIMEOUT, unbonding_period=UNBONDING,
                          exclusive_period=EXCLUSIVE)
    dep = deploy_system(w3, accounts[0], params)
    models = tmp_path / "models"
    models.mkdir()
    s = WorkerSystem(w3, devnet.url, dep, OracleClient(w3, dep.oracle), accounts, models, 0, 0)
    s.int_model_id = s.register(int_model().SerializeToString(), Mode.EXACT, 8, 16, name="int-assigned")
    for i in range(OPERATOR_INDEX, OPERATOR_INDEX + 3):
        s.client.stake(accounts[i], 10**20)
    return s


def test_nodes_answer_their_assignments_and_cover_an_absent_one(aws: WorkerSystem, node_factory: Any) -> None:
    a, b, absent = (aws.accounts[OPERATOR_INDEX + i] for i in range(3))
    start = aws.w3.eth.block_number + 1
    nodes = {op: node_factory(operator_index=OPERATOR_INDEX + i, oracle_address=aws.deployment.oracle,
                              start_block=start, db_path=aws.model_dir / f"node{i}.sqlite3",
                              model_dir=aws.model_dir / f"cache{i}")
             for i, op in enumerate((a, b))}
    values: list[list[int]] = []
    rids: list[int] = []
    assignee: dict[int, str] = {}
    # At least 12 requests, and more until the absent operator has some (each has a third of the weight).
    while len(rids) < 12 or absent not in assignee.values():
        values.append([len(values), 2, -3, 4])
        rids.append(aws.request(aws.int_model_id, int_input(values[-1])))
        assignee[rids[-1]] = aws.client.get_request(rids[-1]).operator
        assert len(rids) < 60
    own = [r for r in rids if assignee[r] in nodes]
    orphans = [r for r in rids if assignee[r] == absent]
    assert own and len(own) + len(orphans) == len(rids), "every request has an assignee here"

    # Inside the exclusive period each assignee answers its own; nobody touches the absent one's.
    wait_for(lambda: all(aws.client.status_of(r) is Status.SUBMITTED for r in own), timeout=60,
             what="assigned requests answered")
    for r in own:
        assert aws.client.get_request(r).operator == assignee[r]
    for r in orphans:
        assert aws.client.status_of(r) is Status.PENDING
        assert aws.submissions_by(a, r) == [] and aws.submissions_by(b, r) == []
        for rn in nodes.values():
            assert rn.node.db.job(r).state is JobState.SEEN  # not even executed: it is someone else's

    # No node sent a transaction that the assignment reverted or skipped: each result went out once.
    for r in own:
        other = b if assignee[r] == a else a
        assert aws.submissions_by(other, r) == []

    # After the period the absent assignee's requests are answered by the others (it loses only the jobs).
    aws.rpc("evm_increaseTime", [EXCLUSIVE])
    aws.rpc("evm_mine")
    wait_for(lambda: all(aws.client.status_of(r) is Status.SUBMITTED for r in orphans), timeout=60,
             what="the absent assignee's requests answered after the period")
    for r in rids:
        answered = aws.client.get_request(r).operator
        assert answered in nodes
        out = aws.client.submitted_events(start, aws.w3.eth.block_number)
        assert {e.output for e in out if e.request_id == r} == {expected_int_output(values[rids.index(r)])}
    assert aws.client.stake_of(absent).staked == 10**20  # no slash for absence

    # Metrics: assigned / answered / missed per node.
    for op, rn in nodes.items():
        rn.node._update_account_metrics()  # noqa: SLF001 - the loop refreshes them on its own schedule
        counts = rn.node.db.assignment_counts(op)
        mine = [r for r in rids if assignee[r] == op]
        assert counts == {"assigned": len(mine), "answered": len(mine), "missed": 0}
        text = rn.node.metrics.render().decode()
        assert f'oracle_worker_assignments{{kind="assigned"}} {float(len(mine))}' in text
