"""The challenger's store across reorgs: roll back to the fork point, keep the verdicts a reorg does not
invalidate, re-track proofs that were in dropped blocks."""

from __future__ import annotations

from pathlib import Path

from oracle.challenger.store import ClaimState, Store


def claim(rid: int, block: int, output: bytes = b"\x01") -> tuple[int, int, str, bytes, int, int, int]:
    return (rid, 1, "0xop", output, block, 1000 + block, 1300 + block)


def test_rollback_keeps_verdicts_and_forgets_only_what_has_none(tmp_path: Path) -> None:
    s = Store(tmp_path / "c.db")
    blocks = [(n, f"0x{n:064x}") for n in range(10, 16)]
    s.advance([(r, 1, b"in", 10 + r) for r in range(1, 6)],
              [claim(1, 10), claim(2, 12), claim(3, 13), claim(4, 14), claim(5, 14)], blocks[-1], blocks)
    s.set_state(1, ClaimState.CORRECT, expected=b"\x01")
    s.set_state(2, ClaimState.PROVEN, expected=b"\x02", tx_hash="0xaa", nonce=0, tx_block=13)
    s.set_state(3, ClaimState.CORRECT, expected=b"\x01")
    s.set_state(4, ClaimState.WRONG, expected=b"\x09")
    # claim 5 stays pending

    undone = s.rollback_to(12, blocks[2][1])
    assert undone == {"forgotten": 1, "orphaned": 2, "proofs_to_recheck": 1}
    assert s.last_block() == (12, blocks[2][1])
    assert [n for n, _ in s.recent_blocks()] == [12, 11, 10]
    visible = {c.request_id: c for c in s.claims()}
    assert set(visible) == {1, 2}  # 3 and 4 orphaned (kept, hidden), 5 forgotten
    assert visible[1].state is ClaimState.CORRECT
    assert visible[2].state is ClaimState.CHALLENGING and visible[2].tx_hash == "0xaa" and visible[2].nonce == 0
    assert {c.request_id for c in s.claims(orphaned=True)} == {1, 2, 3, 4}
    assert s.input_of(3) is None and s.input_of(2) is not None  # requests after the fork are re-read

    # The new branch carries claim 3 unchanged (its verdict comes back) and claim 4 with another output.
    s.advance([], [claim(3, 13), claim(4, 14, b"\x07")], (14, "0x" + "ee" * 32))
    again = {c.request_id: c for c in s.claims()}
    assert again[3].state is ClaimState.CORRECT and again[3].expected == b"\x01"
    assert again[4].state is ClaimState.PENDING and again[4].expected is None and again[4].output == b"\x07"
    s.close()


def test_a_known_claim_is_not_overwritten_by_a_replayed_range(tmp_path: Path) -> None:
    s = Store(tmp_path / "c.db")
    s.advance([], [claim(1, 10)], (10, "0x" + "01" * 32))
    s.set_state(1, ClaimState.CORRECT, expected=b"\x01")
    s.advance([], [claim(1, 10, b"\x05")], (10, "0x" + "01" * 32))  # not orphaned: ignored
    (c,) = s.claims()
    assert c.state is ClaimState.CORRECT and c.output == b"\x01"
    s.close()


def test_an_older_state_file_gains_the_new_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE claims(request_id TEXT PRIMARY KEY, model_id INTEGER NOT NULL, operator TEXT NOT NULL,"
        " output BLOB NOT NULL, block_number INTEGER NOT NULL, submitted_at INTEGER NOT NULL, deadline INTEGER"
        " NOT NULL, state TEXT NOT NULL, expected BLOB, tx_hash TEXT, error TEXT, updated_at REAL NOT NULL);"
        "INSERT INTO claims VALUES ('0x01', 1, '0xop', x'01', 5, 100, 400, 'proven', x'02', '0xab', NULL, 0);")
    old.commit()
    old.close()
    s = Store(path)
    (c,) = s.claims()
    assert c.state is ClaimState.PROVEN and c.tx_hash == "0xab" and not c.settled and not c.orphaned
    s.close()
