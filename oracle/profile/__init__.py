"""The integer profile: programs, their compiler, the reference interpreter and the float converter.

``EXACT`` models are integer-only ONNX graphs. This package turns such a graph into a canonical
*program* (``program``), whose keccak256 is the model's commitment; runs a program exactly
(``reference``, the executable spec that onnxruntime and the Solidity verifier must match); and turns
float classifiers into integer-profile ONNX (``converter``). The format is fixed in
``docs/integer-profile.md``.
"""

from __future__ import annotations

from oracle.profile.codec import decode_tensor, encode_tensor
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Constant, Op, Program, commitment, decode, encode

__all__ = [
    "Constant",
    "Op",
    "Opcode",
    "Program",
    "commitment",
    "decode",
    "decode_tensor",
    "encode",
    "encode_tensor",
]
