"""Deciding whether an attested `EXACT` result is wrong, with no false alarms.

The arbiter is the numpy reference interpreter running the program stored **on-chain** (read back from the
model's data chunks and checked against the registered commitment): that is exactly what the Solidity
verifier executes in a challenge. onnxruntime on the ONNX file is the fast path; it is trusted only after the
ONNX file has been shown to compile to the committed program (then conformance makes the two equal), and
any disagreement with a claim is confirmed by the reference before anything is sent. The daemon also
simulates the challenge with ``eth_call`` before sending it.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from eth_utils import keccak

from oracle.chain.client import OracleClient
from oracle.chain.types import Model
from oracle.errors import ModelError, OracleError
from oracle.profile import reference
from oracle.profile.binding import read_onchain_program
from oracle.profile.program import Program, decode
from oracle.worker.executor import Executor
from oracle.worker.models import ModelInfo, ModelStore

log = structlog.get_logger("oracle.challenger.verify")


class ProgramMismatch(OracleError, ValueError):
    """The on-chain program chunks do not hash to the registered commitment."""


@dataclass(frozen=True)
class Verdict:
    correct: bool
    expected: bytes  # the output a correct execution gives
    via: str  # "onnxruntime" or "reference"


@dataclass
class _Loaded:
    program: Program
    onnx: ModelInfo | None  # None when the fast path is not trustworthy for this model


class ClaimVerifier:
    """Re-executes claims; caches each model's on-chain program and its ONNX fast path."""

    def __init__(self, client: OracleClient, models: ModelStore, executor: Executor) -> None:
        self.client = client
        self.models = models
        self.executor = executor
        self._loaded: dict[int, _Loaded] = {}

    def onchain_program(self, model: Model) -> Program:
        data = read_onchain_program(self.client, model.model_id)
        if keccak(data) != model.program_commitment:
            raise ProgramMismatch(f"model {model.model_id}: on-chain program does not match its commitment")
        return decode(data)

    def _load(self, model: Model) -> _Loaded:
        cached = self._loaded.get(model.model_id)
        if cached is not None:
            return cached
        program = self.onchain_program(model)
        onnx_info: ModelInfo | None = None
        try:
            # The model store binds EXACT files (oracle.profile.binding): it returns a model only when the file
            # compiles to exactly the committed program, and the executor then runs that program.
            onnx_info = self.models.get(model)
        except (ModelError, OracleError) as exc:
            log.warning("fast_path_disabled", model_id=model.model_id, reason=str(exc))
            onnx_info = None
        loaded = _Loaded(program, onnx_info)
        self._loaded[model.model_id] = loaded
        return loaded

    def warm(self, model: Model) -> None:
        """Loads a model ahead of its first claim (fetch, hash check, program read, fast-path check) and runs
        it once on an all-zero input, which also starts the inference child and its session."""
        loaded = self._load(model)
        if loaded.onnx is not None:
            self.executor.run(loaded.onnx, [bytes(model.input_length)])

    def verify(self, model: Model, data: bytes, claimed: bytes) -> Verdict:
        loaded = self._load(model)
        if loaded.onnx is not None:
            (fast,) = self.executor.run(loaded.onnx, [data])
            if isinstance(fast, bytes) and fast == claimed:
                return Verdict(True, claimed, "onnxruntime")
        # Mismatch (or no fast path): the reference over the on-chain program decides.
        expected = reference.run_bytes(loaded.program, data)
        if expected == claimed:
            log.warning("fast_path_disagreed", model_id=model.model_id)
        return Verdict(expected == claimed, expected, "reference")
