"""The untrusted work of the challenger; runs only inside a :class:`oracle.challenger.sandbox.Sandbox` child.

- :func:`load_program` decodes an on-chain program (already checked against its commitment by the parent)
  and keeps it, keyed by commitment, for the child's lifetime;
- :func:`run_reference` re-executes claims with the reference interpreter: exactly what the Solidity
  verifier executes in a challenge, so its answer is the one the chain will accept;
- :func:`bind_onnx` checks a model's ONNX file against its committed program (validation, compilation,
  commitment). It is the one place the challenger loads a model file; a project-wide binding check can
  replace its body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_utils import keccak

from oracle.profile import reference
from oracle.profile.program import Program, decode

_programs: dict[bytes, Program] = {}


def load_program(commitment: bytes, data: bytes) -> tuple[int, int]:
    """Decodes and caches a program; returns its (input width, output width)."""
    if keccak(data) != commitment:
        raise ValueError("program bytes do not match the commitment")
    program = decode(data)
    _programs[commitment] = program
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
    from oracle.worker.models import ModelStore

    store = ModelStore(Path(cache_dir), max_model_bytes=max_model_bytes, max_tensor_bytes=max_tensor_bytes)
    data = store._fetch(model)  # the store's fetch and validation, without any binding step of its own
    store._validate(model, data)
    committed = _programs.get(model.program_commitment)
    if committed is None:
        raise ValueError("the committed program is not loaded")
    bind(data, committed, model.program_commitment)
    return "bound"


def bind(onnx_bytes: bytes, program: Program, program_commitment: bytes) -> None:
    """The file compiles to exactly the committed program, or raises naming the mismatch. The one place the
    challenger relates a file to a program (a project-wide binding check, e.g. ``bind_exact``, goes here)."""
    from oracle.profile.compiler import compile_onnx
    from oracle.profile.program import encode

    compiled = encode(compile_onnx(onnx_bytes, program.input_width, program.output_width))
    if keccak(compiled) != program_commitment:
        raise ValueError(f"the ONNX file compiles to commitment 0x{keccak(compiled).hex()}, not the registered "
                         f"0x{program_commitment.hex()}")
