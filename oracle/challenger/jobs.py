"""The untrusted work of the challenger; runs only inside a :class:`oracle.runtime.sandbox.Sandbox` child.

- :func:`load_program` decodes an on-chain program (already checked against its commitment by the parent)
  and keeps it, keyed by commitment, for the child's lifetime;
- :func:`run_reference` re-executes claims with the reference interpreter: exactly what the Solidity
  verifier executes in a challenge, so its answer is the one the chain will accept;
- :func:`bind_onnx` checks a model's ONNX file against its committed program: the model store's checks,
  then the project's binding (:func:`oracle.profile.binding.bind_exact`). It is the one place the challenger
  loads a model file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from oracle.profile import reference
from oracle.profile.program import Program, decode

_programs: dict[bytes, Program] = {}
_bytes: dict[bytes, bytes] = {}  # the chain's program bytes, by commitment


def load_program(commitment: bytes, data: bytes) -> tuple[int, int]:
    """Decodes and caches a program; returns its (input width, output width)."""
    if keccak(data) != commitment:
        raise ValueError("program bytes do not match the commitment")
    program = decode(data)
    _programs[commitment] = program
    _bytes[commitment] = data
    return program.input_width, program.output_width


def has_program(commitment: bytes) -> bool:
    return commitment in _programs


def run_reference(commitment: bytes, inputs: list[bytes]) -> list[bytes | str]:
    """The correct output for every input, or why the reference could not produce one for that input."""
    program = _programs[commitment]
    out: list[bytes | str] = []
    for data in inputs:
        try:
            out.append(reference.run_bytes(program, data))
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported per input
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def bind_onnx(model: Any, cache_dir: str, max_model_bytes: int, max_tensor_bytes: int) -> str:
    """Fetches the model's ONNX file (keccak256 checked) and runs the model store's checks on it, then binds
    it to the committed program (loaded by :func:`load_program`): "bound", or raises saying why not."""
    from oracle.runtime.model_store import ModelStore

    store = ModelStore(Path(cache_dir), max_model_bytes=max_model_bytes, max_tensor_bytes=max_tensor_bytes)
    data = store.fetch(model)  # the store's fetch and validation; the binding runs here, in this child
    store.validate(model, data)
    if model.program_commitment not in _programs:
        raise ValueError("the committed program is not loaded")
    bind(data, model)
    return "bound"


def bind(onnx_bytes: bytes, model: Any) -> None:
    """The project's binding (:func:`oracle.profile.binding.bind_exact`): the file compiles to exactly the
    committed program and the chain's bytes, or it raises naming the mismatch. Running out of memory is the
    sandbox's limit, not a verdict on the file: it goes up as ``MemoryError``."""
    from oracle.profile.binding import BindingError, bind_exact

    try:
        bind_exact(onnx_bytes, program_commitment=model.program_commitment, input_length=model.input_length,
                   output_length=model.output_length, onchain_program=_bytes[model.program_commitment])
    except BindingError as exc:
        if isinstance(exc.__context__, MemoryError):
            raise MemoryError(str(exc)) from exc
        raise
