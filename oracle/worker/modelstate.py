"""Per-model state the node keeps across restarts (a mixin of :class:`oracle.worker.db.Database`): the models it
parked as too slow to serve, and the binding verdicts of EXACT files (``parked_models`` and ``bindings``)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from oracle.jobstate import JobState


class ModelStateStore:
    """The ``parked_models`` and ``bindings`` tables; needs the host's ``tx()``, ``_query`` and ``set_state``."""

    if TYPE_CHECKING:
        def tx(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]: ...
        def set_state(self, request_ids: Sequence[int], state: JobState, *, error: str | None = None,
                      conn: sqlite3.Connection | None = None, **fields: Any) -> None: ...

    # ------------------------------------------------------------------ parked models
    def park_model(self, model_id: int, reason: str) -> bool:
        """Parks ``model_id``; False when it already was."""
        with self.tx() as c:
            return c.execute("INSERT OR IGNORE INTO parked_models(model_id, reason, parked_at) VALUES(?,?,?)",
                             (model_id, reason, time.time())).rowcount > 0

    def unpark_model(self, model_id: int) -> bool:
        """Un-parks ``model_id``; False when it was not parked."""
        with self.tx() as c:
            return c.execute("DELETE FROM parked_models WHERE model_id=?", (model_id,)).rowcount > 0

    def parked_models(self) -> dict[int, dict[str, Any]]:
        """model id -> {reason, parked_at, dropped} of every parked model."""
        return {r["model_id"]: {"reason": r["reason"], "parked_at": r["parked_at"], "dropped": r["dropped"]}
                for r in self._query("SELECT * FROM parked_models ORDER BY model_id")}

    def drop_parked_jobs(self, model_id: int, request_ids: Sequence[int], reason: str) -> None:
        """Skips pending jobs of a parked model and counts them on its row, in one transaction."""
        with self.tx() as c:
            self.set_state(request_ids, JobState.SKIPPED, error=reason, conn=c)
            c.execute("UPDATE parked_models SET dropped=dropped+? WHERE model_id=?", (len(request_ids), model_id))

    # ------------------------------------------------------------------ binding verdicts
    def binding_verdict(self, key: tuple[bytes, bytes, bytes, str]) -> tuple[bool, str] | None:
        rows = self._query("SELECT ok, reason FROM bindings WHERE onnx_hash=? AND program_commitment=? AND"
                           " onchain_hash=? AND compiler=?", key)
        return (bool(rows[0]["ok"]), rows[0]["reason"]) if rows else None

    def record_binding(self, key: tuple[bytes, bytes, bytes, str], ok: bool, reason: str) -> None:
        with self.tx() as c:
            c.execute("INSERT OR REPLACE INTO bindings(onnx_hash, program_commitment, onchain_hash, compiler, ok,"
                      " reason, created_at) VALUES(?,?,?,?,?,?,?)", (*key, int(ok), reason, time.time()))
