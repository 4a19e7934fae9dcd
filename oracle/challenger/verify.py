"""Deciding whether attested `EXACT` results are wrong, with no false alarms, without trusting any model.

The arbiter is the reference interpreter running the program stored **on-chain** (read back from the
model's data chunks and checked against the registered commitment): exactly what the Solidity verifier
executes in a challenge. Decoding and re-executing that untrusted program happen in a limited child
(:mod:`oracle.runtime.sandbox`, running :mod:`oracle.challenger.jobs`); so does the audit of the model's ONNX
file (:meth:`ClaimVerifier.bind`), in a second child, so a slow or hostile file never delays a verdict. The
daemon simulates every challenge with ``eth_call`` before sending it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_utils.crypto import keccak

from oracle.chain.client import OracleClient
from oracle.chain.types import Model
from oracle.errors import OracleError
from oracle.profile.binding import read_onchain_program
from oracle.runtime.model_store import ModelStore
from oracle.runtime.sandbox import Sandbox, SandboxFailure, SandboxLimits

#: The challenger's untrusted work, run by name in its sandbox children.
JOBS = "oracle.challenger.jobs"


class ProgramMismatch(OracleError, ValueError):
    """The on-chain program chunks do not hash to the registered commitment."""


@dataclass(frozen=True)
class Verdict:
    correct: bool
    expected: bytes  # the output a correct execution gives
    via: str = "reference"


@dataclass(frozen=True)
class NoVerdict:
    """The reference could not produce an answer for this input (the chain cannot either)."""

    reason: str


class ClaimVerifier:
    """Re-executes claims over each model's on-chain program, in a sandbox; caches the program bytes."""

    def __init__(self, client: OracleClient, models: ModelStore, limits: SandboxLimits | None = None,
                 audit_limits: SandboxLimits | None = None) -> None:
        self.client = client
        self.models = models
        self.sandbox = Sandbox(JOBS, limits, name="challenger-reference")
        self.auditor = Sandbox(JOBS, audit_limits or SandboxLimits(timeout=120.0), name="challenger-audit")
        self._programs: dict[int, bytes] = {}
        self._loaded: dict[bytes, int] = {}  # commitment -> sandbox generation that holds it

    def onchain_program(self, model: Model) -> bytes:
        cached = self._programs.get(model.model_id)
        if cached is not None:
            return cached
        data = read_onchain_program(self.client, model.model_id)
        if keccak(data) != model.program_commitment:
            raise ProgramMismatch(f"model {model.model_id}: on-chain program does not match its commitment")
        self._programs[model.model_id] = data
        return data

    def _ensure_loaded(self, sandbox: Sandbox, model: Model) -> None:
        commitment = model.program_commitment
        if sandbox is self.sandbox and self._loaded.get(commitment) == sandbox.generation and sandbox.pid:
            return
        data = self.onchain_program(model)
        sandbox.call("load_program", commitment, data)
        if sandbox is self.sandbox:
            self._loaded[commitment] = sandbox.generation

    def warm(self, model: Model) -> None:
        """Reads and loads a model's program ahead of its first claim; raises :class:`SandboxFailure`."""
        self._ensure_loaded(self.sandbox, model)

    def verify_many(self, model: Model, items: Sequence[tuple[bytes, bytes]]) -> list[Verdict | NoVerdict]:
        """Verdicts for (input, claimed output) pairs of one model. Raises :class:`SandboxFailure` when the
        program cannot be run within the limits (the caller quarantines the model)."""
        self._ensure_loaded(self.sandbox, model)
        try:
            outs = self.sandbox.call("run_reference", model.program_commitment, [i for i, _ in items])
        except SandboxFailure:
            self._loaded.pop(model.program_commitment, None)
            raise
        return [NoVerdict(o) if isinstance(o, str) else Verdict(o == claimed, o)
                for o, (_, claimed) in zip(outs, items, strict=True)]

    def verify(self, model: Model, data: bytes, claimed: bytes) -> Verdict:
        (v,) = self.verify_many(model, [(data, claimed)])
        if isinstance(v, NoVerdict):
            raise OracleError(f"model {model.model_id}: reference failed: {v.reason}")
        return v

    def bind(self, model: Model) -> str:
        """Checks in the audit child that the model's ONNX file compiles to its committed program; returns
        "bound" or raises :class:`SandboxFailure` saying why not."""
        self.auditor.call("load_program", model.program_commitment, self.onchain_program(model))
        return str(self.auditor.call("bind_onnx", model, str(self.models.cache_dir), self.models.max_model_bytes,
                                     self.models.max_tensor_bytes))

    def close(self) -> None:
        self.sandbox.close()
        self.auditor.close()
