"""Chaos: reorgs that drop a worker's mined transactions without re-including them (threat 27, "nonce wedge").

Real anvil, the worker as its own process (``tests/worker/node_proc.py``), ``anvil_reorg`` with an empty (or
partial) transaction list: the dropped transactions are gone from the chain *and* from the mempool, and a later
nonce still in flight can never mine until the node re-sends the ones below it. Each test asserts the worker
keeps mining afterwards and every job ends settled on-chain, with exactly one successful submission per request.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oracle.chain.txstore import TxState
from oracle.chain.types import Status
from oracle.jobstate import JobState
from oracle.worker.db import Database

from .conftest import OPERATOR_INDEX, WINDOW, WorkerSystem, dev_account, int_input, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _spawn(ws: WorkerSystem, tmp: Path, index: int, start_block: int) -> subprocess.Popen[bytes]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    e.update({
        "ORACLE_RPC_URLS": f'["{ws.url}"]', "ORACLE_ORACLE_ADDRESS": ws.deployment.oracle,
        "ORACLE_DB_PATH": str(tmp / "node.sqlite3"), "ORACLE_MODEL_DIR": str(tmp / "cache"),
        "ORACLE_POLL_INTERVAL": "0.05", "ORACLE_API_PORT": "0", "ORACLE_START_BLOCK": str(start_block),
        "ORACLE_PRIVATE_KEY": dev_account(index).key.hex(), "ORACLE_STUCK_AFTER": "3",
        "ORACLE_BATCH_SIZE": "1", "PYTHONPATH": str(ROOT),
    })
    log = open(tmp / "node.log", "ab")  # noqa: SIM115 - kept for the failure message (and across restarts)
    return subprocess.Popen([sys.executable, "-m", "tests.worker.node_proc"], cwd=ROOT, env=e, stdout=log,
                            stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes], tmp: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (tmp / "node.log").read_text()[-3000:]


def _nonce(ws: WorkerSystem, op: str, which: str = "latest") -> int:
    return int(ws.w3.eth.get_transaction_count(op, which))  # type: ignore[arg-type]


def _in_mempool(ws: WorkerSystem, op: str) -> list[dict[str, Any]]:
    pool = ws.rpc("txpool_content")["pending"]
    return list(pool.get(op.lower(), {}).values())


def _settle_all(ws: WorkerSystem, db: Database, op: str, rids: list[int], proc: subprocess.Popen[bytes],
                tmp: Path) -> None:
    """Every request answered once by ``op``; past the window the worker finalizes them all."""
    def alive() -> None:
        assert proc.poll() is None, (tmp / "node.log").read_text()[-3000:]

    wait_for(lambda: (alive(), all(ws.client.status_of(r) is Status.SUBMITTED for r in rids))[1], timeout=90,
             what="every request submitted")
    ws.rpc("evm_increaseTime", [WINDOW + 1])
    ws.rpc("evm_mine")
    wait_for(lambda: (alive(), all(ws.client.status_of(r) is Status.FINALIZED for r in rids))[1], timeout=90,
             what="every result finalized by the worker")
    wait_for(lambda: all(db.job(r).state is JobState.FINALIZED for r in rids), timeout=30, what="db finalized")
    for r in rids:
        assert ws.client.get_request(r).operator == op
        assert len(ws.submissions_by(op, r)) == 2, "one submission and one finalization per request on-chain"


def _no_tx_left_behind(db: Database) -> None:
    states = [t.state for t in db.all_txs()]
    assert TxState.PENDING not in states and TxState.ORPHANED not in states, states


@pytest.mark.timeout(300)
@pytest.mark.parametrize("restart", [False, True], ids=["running", "killed-and-restarted"])
def test_reorg_drops_five_mined_nonces_while_the_sixth_is_in_flight(ws: WorkerSystem, tmp_path: Path,
                                                                    restart: bool) -> None:
    """The soak's case: nonces n..n+4 mined, n+5 broadcast; a reorg removes n..n+4 for good. Also with the
    worker killed (-9) just before the reorg and restarted on the same database after it (the soak's worker
    stayed wedged through five restarts)."""
    index = OPERATOR_INDEX + 3
    op = dev_account(index).address
    start = ws.w3.eth.block_number + 1
    rids = [ws.request(ws.int_model_id, int_input([i, 2 * i, 3, 4])) for i in range(6)]
    n0 = _nonce(ws, op)
    ws.rpc("evm_setAutomine", [False])
    proc = _spawn(ws, tmp_path, index, start)
    db = Database(tmp_path / "node.sqlite3")
    try:
        for k in range(5):  # mine the worker's submissions one per block, as it sends them
            wait_for(lambda k=k: _nonce(ws, op, "pending") > n0 + k, timeout=90, what=f"submission {k} broadcast")
            ws.rpc("evm_mine")
        assert _nonce(ws, op) == n0 + 5
        wait_for(lambda: len(_in_mempool(ws, op)) == 1, timeout=60, what="the sixth submission in flight")
        (inflight,) = _in_mempool(ws, op)
        assert int(inflight["nonce"], 16) == n0 + 5
        dropped = [t.tx_hash for t in db.all_txs() if t.state is TxState.MINED]
        assert len(dropped) == 5

        if restart:
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        ws.rpc("anvil_reorg", [5, []])  # the five blocks with our submissions, replaced by empty ones
        assert _nonce(ws, op) == n0, "the reorg really dropped the five mined nonces"
        for h in dropped:
            with pytest.raises(Exception, match="not found"):
                ws.w3.eth.get_transaction_receipt(h)  # type: ignore[arg-type]
        assert all(ws.client.status_of(r) is Status.PENDING for r in rids)
        ws.rpc("evm_setAutomine", [True])
        ws.rpc("evm_mine")  # the gap: the sixth cannot mine, whatever happens to blocks
        if restart:
            assert _nonce(ws, op) == n0, "wedged while the worker is down"
            proc = _spawn(ws, tmp_path, index, start)

        wait_for(lambda: _nonce(ws, op) >= n0 + 6, timeout=90, what="the worker mines again past the gap")
        _settle_all(ws, db, op, rids, proc, tmp_path)
        # ... and keeps mining: a new request after the recovery is served as usual
        late = ws.request(ws.int_model_id, int_input([9, 9, 9, 9]))
        _settle_all(ws, db, op, [late], proc, tmp_path)
        _no_tx_left_behind(db)
        assert any("tx_resent_after_reorg" in line for line in (tmp_path / "node.log").read_text().splitlines())
    finally:
        ws.rpc("evm_setAutomine", [True])
        _stop(proc, tmp_path)


@pytest.mark.timeout(300)
def test_four_block_reorgs_drop_submissions_and_finalizations(ws: WorkerSystem, tmp_path: Path) -> None:
    """A 4-block reorg re-including two of four submissions and dropping two, then one dropping every
    finalization: re-included transactions are recognised (not left orphaned), dropped ones are sent again
    (finalizes included: their jobs do not stay ``finalized`` in the database)."""
    index = OPERATOR_INDEX + 4
    op = dev_account(index).address
    start = ws.w3.eth.block_number + 1
    rids = [ws.request(ws.int_model_id, int_input([7, i, 1, 2])) for i in range(4)]
    n0 = _nonce(ws, op)
    proc = _spawn(ws, tmp_path, index, start)
    db = Database(tmp_path / "node.sqlite3")
    try:
        wait_for(lambda: all(ws.client.status_of(r) is Status.SUBMITTED for r in rids), timeout=90,
                 what="first submissions")
        head = ws.w3.eth.block_number
        wait_for(lambda: len([t for t in db.all_txs() if t.state is TxState.MINED]) == 4, what="db mined")
        mined = sorted((t for t in db.all_txs() if t.state is TxState.MINED), key=lambda t: t.nonce)
        assert [t.nonce for t in mined] == list(range(n0, n0 + 4))
        assert sorted(t.block_number for t in mined) == list(range(head - 3, head + 1)), "one per block"
        # re-include the first two (same signed bytes) in the new branch's first block, drop the other two
        ws.rpc("anvil_reorg", [4, [["0x" + mined[0].raw.hex(), 0], ["0x" + mined[1].raw.hex(), 0]]])
        assert _nonce(ws, op) == n0 + 2, "two re-included, two dropped"
        ws.rpc("evm_mine")
        _settle_all(ws, db, op, rids, proc, tmp_path)
        by_hash = {t.tx_hash: t for t in db.all_txs()}
        for t in mined[:2]:
            assert by_hash[t.tx_hash].state is TxState.MINED, "re-included: recognised, not left orphaned"
            assert by_hash[t.tx_hash].block_number == head - 3

        fin = sorted((t for t in db.all_txs() if t.kind == "finalize" and t.state is TxState.MINED),
                     key=lambda t: t.nonce)
        assert len(fin) == 4
        depth = ws.w3.eth.block_number - min(t.block_number for t in fin) + 1
        assert depth == 4
        # The node finds a same-height reorg by hash at its next poll and re-sends at once: hold the blocks
        # until the dropped state has been checked.
        ws.rpc("evm_setAutomine", [False])
        try:
            ws.rpc("anvil_reorg", [depth, []])  # every finalization dropped
            assert all(ws.client.status_of(r) is Status.FINALIZABLE for r in rids)
        finally:
            ws.rpc("evm_setAutomine", [True])
        ws.rpc("evm_mine")
        wait_for(lambda: all(ws.client.status_of(r) is Status.FINALIZED for r in rids), timeout=90,
                 what="dropped finalizations sent again")
        wait_for(lambda: all(db.job(r).state is JobState.FINALIZED for r in rids), what="db finalized")
        late = ws.request(ws.int_model_id, int_input([5, 5, 5, 5]))
        _settle_all(ws, db, op, [late], proc, tmp_path)
        _no_tx_left_behind(db)
        for r in rids:
            assert len(ws.submissions_by(op, r)) == 2
    finally:
        _stop(proc, tmp_path)


def test_a_gap_none_of_our_transactions_can_fill_gets_a_self_transfer(ws: WorkerSystem, node_factory) -> None:
    """The operator used the node's key outside the node (a ``stake`` top-up) just before the node's own
    submission; a reorg drops both. The node has nothing stored for the first nonce: it fills it with a
    zero-value transfer to itself, then re-sends its own, instead of leaving its submission behind a gap."""
    index = OPERATOR_INDEX + 3
    op = dev_account(index).address
    rid = ws.request(ws.int_model_id, int_input([6, 6, 6, 6]))
    ws.client.stake(op, 1)  # nonce n, sent outside the node
    n = _nonce(ws, op) - 1
    node = node_factory(start=False, operator_index=index, start_block=ws.w3.eth.block_number - 1)
    node.setup()
    try:
        wait_for(lambda: (node.step(), node.db.job(rid).state is JobState.SUBMITTED)[1], what="submitted")
        (ours,) = node.db.all_txs()
        assert ours.nonce == n + 1
        ws.rpc("anvil_reorg", [2, []])  # the stake top-up and our submission
        assert _nonce(ws, op) == n and ws.client.status_of(rid) is Status.PENDING
        wait_for(lambda: (node.step(), ws.client.status_of(rid) is Status.SUBMITTED)[1], what="resubmitted")
        wait_for(lambda: (node.step(), node.db.job(rid).state is JobState.SUBMITTED)[1], what="db submitted")
        by_nonce = {t.nonce: t for t in node.db.all_txs()}
        assert by_nonce[n].kind == "filler" and by_nonce[n].state is TxState.MINED
        tx = ws.w3.eth.get_transaction(by_nonce[n].tx_hash)  # type: ignore[arg-type]
        assert tx["to"] == op and tx["value"] == 0
        assert by_nonce[n + 1].tx_hash == ours.tx_hash and by_nonce[n + 1].state is TxState.MINED
        assert len(ws.submissions_by(op, rid)) == 1
        _no_tx_left_behind(node.db)
    finally:
        node.cleanup()
