"""Checks 3 to 6 of the model store (:mod:`oracle.runtime.model_store`) on bytes whose keccak256 was checked,
and what they produce: the :class:`ModelInfo` the executor runs.

3. Protobuf parse + ``onnx.checker`` (corrupt / truncated files).
4. No external data anywhere (initializers, sparse initializers, Constant attributes): external weight
   files are not covered by the hash and are a path-traversal vector.
5. Only known ops: the integer-profile op set for ``EXACT``; for ``ATTESTED`` any op with a registered
   schema in the default or ``ai.onnx.ml`` domain, and no subgraphs (control flow).
6. Static I/O shapes; every declared tensor and initializer under ``max_tensor_bytes``; exactly one input
   and one output, whose byte lengths under the canonical encoding (:mod:`oracle.runtime.codec`) equal the
   registered ``inputLength`` / ``outputLength``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oracle.chain.types import Mode, Model
from oracle.errors import ModelError
from oracle.profile.node_lowering import SUPPORTED_OPS
from oracle.runtime import codec

#: The integer profile's op set, as the compiler exports it (docs/integer-profile.md; Constant is folded).
EXACT_OPS = frozenset(SUPPORTED_OPS)
ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
CONTROL_FLOW = frozenset({"If", "Loop", "Scan", "SequenceMap"})
INT_TYPES = {2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 12: 4, 13: 8}  # onnx elem type -> bytes (uint8..uint64)
FLOAT32 = 1


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    elem_type: int  # onnx TensorProto elem type of the graph's tensor
    is_float: bool
    width: int  # bytes per element in the canonical encoding


@dataclass(frozen=True)
class ModelInfo:
    """A verified, validated model ready for the executor."""

    model_id: int
    mode: Mode
    onnx_hash: bytes
    path: Path
    input: TensorSpec
    output: TensorSpec
    #: EXACT: the proven program (keccak256 == ``program_commitment``) the executor runs instead of the file.
    program_path: Path | None = None
    program_commitment: bytes | None = None


def check_model(model: Model, data: bytes, *, path: Path, max_tensor_bytes: int) -> ModelInfo:
    """Checks 3 to 6 of :mod:`oracle.runtime.model_store` on bytes whose hash was checked: the model ready for
    the executor (its file at ``path``), or :class:`ModelError` saying why not."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"model {model.model_id}: not a valid ONNX file (corrupt or truncated): {exc}") from exc
    _refuse_external_data(model.model_id, proto)
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types
        raise ModelError(f"model {model.model_id}: ONNX checker refused the file: {exc}") from exc
    graph = proto.graph
    for node in graph.node:
        _check_node(model, node, max_tensor_bytes)
    for init in graph.initializer:
        _check_tensor_size(max_tensor_bytes, model.model_id, init.name, list(init.dims), init.data_type)
    for s in graph.sparse_initializer:
        _check_tensor_size(max_tensor_bytes, model.model_id, s.values.name, list(s.dims), s.values.data_type)
    init_names = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ModelError(f"model {model.model_id}: needs exactly one input and one output tensor "
                         f"(has {len(inputs)} inputs, {len(graph.output)} outputs); export a single output "
                         "(e.g. skl2onnx with zipmap=False and only the label or the probabilities)")
    spec_in = _tensor_spec(max_tensor_bytes, model, inputs[0], model.input_length, "input")
    spec_out = _tensor_spec(max_tensor_bytes, model, graph.output[0], model.output_length, "output")
    return ModelInfo(model.model_id, model.mode, model.onnx_hash, path, spec_in, spec_out)


def _check_node(model: Model, node: object, max_tensor_bytes: int) -> None:
    import onnx

    n: onnx.NodeProto = node  # type: ignore[assignment]
    where = f"model {model.model_id}: node {n.name or n.op_type!r}"
    if n.domain not in ALLOWED_DOMAINS:
        raise ModelError(f"{where}: custom op domain {n.domain!r} is not supported")
    if model.mode is Mode.EXACT and n.op_type not in EXACT_OPS:
        raise ModelError(f"{where}: op {n.op_type} is not in the integer profile")
    if n.op_type in CONTROL_FLOW or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                         for a in n.attribute):
        raise ModelError(f"{where}: control flow / subgraphs are not supported")
    if not onnx.defs.has(n.op_type, n.domain):
        raise ModelError(f"{where}: unknown op {n.op_type!r}")
    for a in n.attribute:
        if a.type == onnx.AttributeProto.TENSOR:
            _check_tensor_size(max_tensor_bytes, model.model_id, n.name, list(a.t.dims), a.t.data_type)


def _check_tensor_size(max_tensor_bytes: int, model_id: int, name: str, dims: list[int], elem_type: int) -> None:
    n = 1
    for d in dims:
        if d < 0:
            raise ModelError(f"model {model_id}: tensor {name!r} has a negative dimension")
        n *= d
    size = n * max(INT_TYPES.get(elem_type, 8), 4 if elem_type == FLOAT32 else 1)
    if size > max_tensor_bytes:
        raise ModelError(f"model {model_id}: tensor {name!r} is {size} bytes, over the "
                         f"{max_tensor_bytes}-byte cap")


def _tensor_spec(max_tensor_bytes: int, model: Model, vi: object, length: int, what: str) -> TensorSpec:
    import onnx

    v: onnx.ValueInfoProto = vi  # type: ignore[assignment]
    tt = v.type.tensor_type
    if not v.type.HasField("tensor_type"):
        raise ModelError(f"model {model.model_id}: {what} {v.name!r} is not a tensor")
    dims: list[int] = []
    for d in tt.shape.dim:
        if not d.HasField("dim_value") or d.dim_value <= 0:
            raise ModelError(f"model {model.model_id}: {what} {v.name!r} has a dynamic shape; the canonical "
                             "encoding needs static shapes (fix the batch dimension to 1)")
        dims.append(int(d.dim_value))
    _check_tensor_size(max_tensor_bytes, model.model_id, v.name, dims, tt.elem_type)
    if tt.elem_type == FLOAT32:
        if model.mode is Mode.EXACT:
            raise ModelError(f"model {model.model_id}: EXACT models have integer I/O only")
        width, is_float = codec.FLOAT_WIDTH, True
    elif tt.elem_type in INT_TYPES:
        is_float = False
        try:
            width = codec.int_width(length, dims)
        except ValueError as exc:
            raise ModelError(f"model {model.model_id}: registered {what} length does not match the graph: "
                             f"{exc}") from exc
    else:
        raise ModelError(f"model {model.model_id}: {what} element type {tt.elem_type} is not supported "
                         "(int8..int64 or float32)")
    if codec.numel(tuple(dims)) * width != length:
        raise ModelError(f"model {model.model_id}: registered {what} length {length} != "
                         f"{codec.numel(tuple(dims))} elements x {width} bytes")
    return TensorSpec(v.name, tuple(dims), tt.elem_type, is_float, width)


def _refuse_external_data(model_id: int, proto: object) -> None:
    import onnx

    p: onnx.ModelProto = proto  # type: ignore[assignment]

    def bad(t: onnx.TensorProto) -> bool:
        return t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data) > 0

    tensors: list[onnx.TensorProto] = list(p.graph.initializer)
    tensors += [s.values for s in p.graph.sparse_initializer] + [s.indices for s in p.graph.sparse_initializer]
    for node in p.graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                tensors.append(a.t)
            tensors.extend(a.tensors)
    for t in tensors:
        if bad(t):
            raise ModelError(f"model {model_id}: tensor {t.name!r} uses external data; external weight files "
                             "are not covered by the registered hash and are refused (embed the weights)")
