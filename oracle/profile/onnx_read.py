"""Reading ONNX protos for the integer-profile compiler: element types, integer constants, static shapes,
node attributes and ONNX Reshape semantics. Every refusal is a :class:`ProfileError` naming the node."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from oracle.errors import ProfileError
from oracle.profile.codec import INT64_MAX, IntArray, Shape, numel
from oracle.profile.opcodes import MAX_RANK

#: Signed integer element types a non-constant tensor may have, with their widths in bytes.
SIGNED_WIDTH: dict[int, int] = {
    TensorProto.INT8: 1,
    TensorProto.INT16: 2,
    TensorProto.INT32: 4,
    TensorProto.INT64: 8,
}
#: Element types accepted for initializers and Constant nodes (values are range-checked into int64).
CONST_TYPES = frozenset(
    {*SIGNED_WIDTH, TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64}
)



def type_name(elem_type: int) -> str:
    try:
        return str(TensorProto.DataType.Name(elem_type))
    except ValueError:
        return f"type {elem_type}"


def load_model(model: onnx.ModelProto | bytes) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    try:
        return onnx.load_model_from_string(bytes(model))
    except Exception as exc:  # protobuf raises its own DecodeError family
        raise ProfileError(f"not a valid ONNX model: {exc}") from None


def const_array(tensor: TensorProto, where: str) -> IntArray:
    """Integer tensor proto -> int64 array, refusing external data and values outside int64."""
    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        raise ProfileError(
            f"tensor {tensor.name!r} uses external data; embed all weights in the ONNX file", node=where
        )
    if tensor.data_type not in CONST_TYPES:
        raise ProfileError(
            f"constant {tensor.name!r} has element type {type_name(tensor.data_type)}; the integer "
            "profile needs integer constants (convert float models with `oracle model convert`)",
            node=where,
        )
    arr = numpy_helper.to_array(tensor)
    if arr.size and arr.dtype == np.uint64 and int(arr.max()) > INT64_MAX:
        raise ProfileError(f"constant {tensor.name!r} has values above int64 max", node=where)
    return np.ascontiguousarray(arr.astype(np.int64))


def static_shape(vi: onnx.ValueInfoProto, what: str) -> Shape:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
        raise ProfileError(f"{what} {vi.name!r} has no static shape", node=vi.name)
    dims: list[int] = []
    for d in tt.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 1:
            shown = d.dim_param or "?"
            raise ProfileError(
                f"{what} {vi.name!r} has a dynamic shape (dimension {shown!r}); fix every dimension, "
                "batch size included",
                node=vi.name,
            )
        dims.append(int(d.dim_value))
    if len(dims) > MAX_RANK:
        raise ProfileError(f"{what} {vi.name!r} has rank {len(dims)} > {MAX_RANK}", node=vi.name)
    return tuple(dims)


def node_attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def reshape_target(src: Shape, target: IntArray, allowzero: int, where: str) -> Shape:
    """ONNX Reshape shape semantics (0 copies a dimension unless allowzero, one -1 is inferred)."""
    dims = [int(d) for d in target.reshape(-1)]
    out: list[int] = []
    infer = -1
    for i, d in enumerate(dims):
        if d == 0 and not allowzero:
            if i >= len(src):
                raise ProfileError(f"Reshape target {dims} copies a missing dimension {i}", node=where)
            out.append(src[i])
        elif d == -1:
            if infer >= 0:
                raise ProfileError(f"Reshape target {dims} has more than one -1", node=where)
            infer = i
            out.append(1)
        elif d < 1:
            raise ProfileError(f"Reshape target {dims} has an empty or negative dimension", node=where)
        else:
            out.append(d)
    if infer >= 0:
        rest = numel(tuple(out))
        if numel(src) % rest:
            raise ProfileError(f"Reshape {list(src)} -> {dims} does not divide evenly", node=where)
        out[infer] = numel(src) // rest
    if numel(tuple(out)) != numel(src):
        raise ProfileError(f"Reshape {list(src)} -> {out} changes the element count", node=where)
    return tuple(out)
