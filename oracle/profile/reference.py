"""The reference interpreter: the executable spec of the integer profile, in numpy int64.

onnxruntime (the operators' fast path) and the Solidity verifier must match this module bit for bit.
Each op is a standalone function of its operand arrays (:func:`run_op`) because the interactive
fraud proof of the next milestone bisects to a single op and re-executes only that one.

Semantics are total (docs/integer-profile.md, "Semantics"): every op result is reduced to int64 with
two's complement wrap (numpy's int64 arithmetic), and the model output saturates to the declared output
width. For compiled programs neither ever changes a value (the compiler's interval analysis proves it);
for any other registered program they define the one correct answer, which the verifier computes too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oracle.errors import EncodingError
from oracle.profile.codec import IntArray, Shape, decode_tensor, encode_tensor, saturate, width_range
from oracle.profile.opcodes import Opcode, onnx_perm
from oracle.profile.program import Program


def trunc_div(a: IntArray, b: IntArray) -> IntArray:
    """Integer division truncating toward zero, as onnxruntime's int64 Div and the EVM's ``sdiv``.

    ``fmod`` has the dividend's sign (C semantics), so ``a - fmod(a, b)`` is an exact multiple of ``b``
    lying between 0 and ``a``: the floor division of it is exact.
    Total: ``INT64_MIN / -1`` wraps to ``INT64_MIN`` (2^63 reduced to int64), and ``x / 0`` is 0 (only a
    computed divisor can be 0), which is what the verifier's ``signextend(7, sdiv(a, b))`` gives.
    """
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        a, b = np.broadcast_arrays(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
        safe = np.where(b == 0, 1, b)
        rem = np.fmod(a, safe)
        return np.where(b == 0, 0, np.floor_divide(a - rem, safe))


def gather(data: IntArray, indices: IntArray) -> IntArray:
    """Gather along axis 0; an index outside ``[0, len(data))`` selects a row of zeros (total semantics)."""
    n = data.shape[0]
    valid = (indices >= 0) & (indices < n)
    rows = np.take(data, np.where(valid, indices, 0), axis=0)
    mask = valid.reshape(valid.shape + (1,) * (data.ndim - 1))
    return np.where(mask, rows, 0)


def run_op(
    opcode: Opcode | int,
    inputs: Sequence[IntArray],
    attrs: Sequence[int],
    out_shape: Shape,
) -> IntArray:
    """Evaluate one op on int64 operands; ``out_shape`` is the op's entry in the tensor table.

    Arithmetic wraps to int64 (never raises or warns, even on 0-d operands): the defined result.
    """
    with np.errstate(over="ignore"):
        return _run_op(Opcode(opcode), inputs, attrs, out_shape)


def _run_op(code: Opcode, inputs: Sequence[IntArray], attrs: Sequence[int], out_shape: Shape) -> IntArray:
    if code is Opcode.MATMUL:
        result = np.matmul(inputs[0], inputs[1])
    elif code is Opcode.ADD:
        result = np.add(inputs[0], inputs[1])
    elif code is Opcode.SUB:
        result = np.subtract(inputs[0], inputs[1])
    elif code is Opcode.MUL:
        result = np.multiply(inputs[0], inputs[1])
    elif code is Opcode.DIV:
        result = trunc_div(inputs[0], inputs[1])
    elif code is Opcode.MAX:
        result = np.maximum(inputs[0], inputs[1])
    elif code is Opcode.MIN:
        result = np.minimum(inputs[0], inputs[1])
    elif code is Opcode.CLIP:
        result = np.clip(inputs[0], attrs[0], attrs[1])
    elif code is Opcode.TRANSPOSE:
        result = np.ascontiguousarray(inputs[0].T)
    elif code is Opcode.TRANSPOSE_ND:
        perm = onnx_perm(tuple(attrs), inputs[0].ndim)
        result = np.transpose(inputs[0], perm)
    elif code is Opcode.GATHER:
        result = gather(inputs[0], inputs[1])
    elif code is Opcode.REDUCE_SUM:
        result = np.sum(inputs[0], axis=int(attrs[0]), keepdims=bool(attrs[1]), dtype=np.int64)
    elif code is Opcode.REDUCE_MAX:
        result = np.max(inputs[0], axis=int(attrs[0]), keepdims=bool(attrs[1]))
    elif code is Opcode.ARGMAX:
        axis, keepdims, last = (int(a) for a in attrs)
        x = inputs[0]
        if last:
            # Index of the last maximum = (n - 1) - index of the first maximum of the reversed axis.
            n = x.shape[axis]
            result = (n - 1) - np.argmax(np.flip(x, axis=axis), axis=axis)
        else:
            result = np.argmax(x, axis=axis)
        if keepdims:
            result = np.expand_dims(result, axis)
    else:  # RESHAPE, FLATTEN, IDENTITY, CAST: values unchanged, row-major.
        result = inputs[0]
    return np.asarray(result, dtype=np.int64).reshape(out_shape)


def run_all(program: Program, x: IntArray) -> list[IntArray]:
    """Run ``program`` and return every op's output in program order (what v2 bisection commits to)."""
    env = _bind_input(program, x)
    outputs: list[IntArray] = []
    shapes = program.shapes
    for op in program.ops:
        value = run_op(op.opcode, [env[t] for t in op.inputs], op.attrs, shapes[op.output])
        env[op.output] = value
        outputs.append(value)
    return outputs


def run(program: Program, x: IntArray) -> IntArray:
    """Run ``program`` on the input tensor ``x`` (values must fit the declared input width)."""
    env = _bind_input(program, x)
    shapes = program.shapes
    for op in program.ops:
        env[op.output] = run_op(op.opcode, [env[t] for t in op.inputs], op.attrs, shapes[op.output])
    return saturate(env[program.output_id], program.output_width)


def run_bytes(program: Program, input_bytes: bytes) -> bytes:
    """Canonical input bytes in, canonical output bytes out: exactly what an attestation commits to."""
    x = decode_tensor(input_bytes, program.input_shape, program.input_width)
    return encode_tensor(run(program, x), program.output_width)


def _bind_input(program: Program, x: IntArray) -> dict[int, IntArray]:
    """Start the value environment with the checked input and the constants."""
    arr = np.asarray(x)
    if tuple(arr.shape) != program.input_shape:
        raise EncodingError(f"input shape {list(arr.shape)} != model input shape {list(program.input_shape)}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise EncodingError(f"input must be an integer array, got dtype {arr.dtype}")
    lo, hi = width_range(program.input_width)
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise EncodingError(f"input values outside the declared {program.input_width}-byte input width")
    env: dict[int, IntArray] = {c.tensor_id: c.values for c in program.constants}
    env[program.input_id] = arr.astype(np.int64)
    return env
