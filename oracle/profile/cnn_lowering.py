"""Float convolutional graph -> chain of dense "max of affine maps" stages (the float half of the CNN
converter; :mod:`oracle.profile.cnn` quantizes the result).

Every activation is handled flattened in row-major ``(C, H, W)`` order. A convolution (with its pads
and strides), a BatchNormalization, an AveragePool, a Flatten, a Gemm and an Add/Mul by a constant are
all affine maps of that flat vector, so consecutive ones compose into one dense matrix and bias (the
"Toeplitz" form of a convolution). A MaxPool k x k picks, for each of its k^2 window offsets, one input
per pooled position: a column selection of the pending matrix. The pooled value is the maximum over the
k^2 selected affine maps. Relu commutes with that maximum, so ``Conv -> BN -> Relu -> MaxPool`` is one
:class:`Stage`: ``relu(max_j(a @ W_j + b_j))``. A stage ends where a linear op follows a Relu or a
MaxPool (a max of affine maps is not affine).

Padding positions of a MaxPool are never the maximum (ONNX pads with -inf); a selection uses another
element of the same window there, which leaves the maximum unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper

from oracle.errors import ProfileError
from oracle.profile.float_network import TERMINAL_OPS, _node_name, read_graph

FloatArray = npt.NDArray[np.float64]
_SHAPE_ONLY = frozenset({"Identity", "Flatten", "Reshape", "Dropout"})
_LINEAR = frozenset({"Conv", "BatchNormalization", "AveragePool", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div"})
SUPPORTED = tuple(sorted(_SHAPE_ONLY | _LINEAR | {"Relu", "MaxPool", "Cast"}))


@dataclass(frozen=True)
class Stage:
    """``relu?(max_j(a @ weights[j] + biases[j]))`` on the flat activation ``a`` of the stage input."""

    weights: tuple[FloatArray, ...]
    biases: tuple[FloatArray, ...]
    relu: bool


@dataclass(frozen=True)
class FloatCNN:
    stages: tuple[Stage, ...]
    input_shape: tuple[int, ...]  # one sample, without the batch dimension (e.g. (1, 8, 8))
    final_activation: str | None

    @property
    def n_features(self) -> int:
        return math.prod(self.input_shape)

    def scores(self, x: npt.ArrayLike) -> FloatArray:
        """float64 forward pass of the lowered network on flat samples ``[N, n_features]``."""
        a = np.asarray(x, dtype=np.float64).reshape(-1, self.n_features)
        for st in self.stages:
            z = np.max([a @ w + b for w, b in zip(st.weights, st.biases, strict=True)], axis=0)
            a = np.maximum(z, 0.0) if st.relu else z
        return a

    def predict_index(self, x: npt.ArrayLike) -> npt.NDArray[np.int64]:
        return np.asarray(np.argmax(self.scores(x), axis=1), dtype=np.int64)


# ------------------------------------------------------------------------------- linear operators


def _spatial_pads(attrs: dict[str, Any], hw: tuple[int, int], kernel: list[int], strides: list[int],
                  where: str) -> list[int]:
    """``[top, left, bottom, right]`` from ``pads`` or ``auto_pad``."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("NOTSET", ""):
        pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
        if len(pads) != 4:
            raise ProfileError(f"pads {pads} are not 2-D (4 values)", node=where)
        return pads
    if auto == "VALID":
        return [0, 0, 0, 0]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out: list[int] = [0, 0, 0, 0]
        for axis in range(2):
            total = max((math.ceil(hw[axis] / strides[axis]) - 1) * strides[axis] + kernel[axis] - hw[axis], 0)
            small = total // 2
            out[axis], out[axis + 2] = (small, total - small) if auto == "SAME_UPPER" else (total - small, small)
        return out
    raise ProfileError(f"auto_pad={auto} is not supported; export with explicit pads", node=where)


IndexList = list[npt.NDArray[np.int64]]


def _windows(shape: tuple[int, ...], attrs: dict[str, Any], where: str, kernel: list[int] | None = None
             ) -> tuple[tuple[int, int], IndexList, IndexList, tuple[int, int]]:
    """Output size and, per kernel offset, the input row/col of every output row/col (may be out of range)."""
    if len(shape) != 3:
        raise ProfileError(f"expects a [N,C,H,W] input, the activations here are {list(shape)}", node=where)
    _, h, w = shape
    kernel = kernel or [int(k) for k in attrs["kernel_shape"]]
    strides = [int(s) for s in attrs.get("strides", [1, 1])]
    dil = [int(d) for d in attrs.get("dilations", [1, 1])]
    if len(kernel) != 2:
        raise ProfileError(f"only 2-D kernels are supported, got kernel_shape {kernel}", node=where)
    if dil != [1, 1]:
        raise ProfileError(f"dilations {dil} are not supported; use dilations=[1,1] (or an explicit "
                           "zero-filled kernel)", node=where)
    if int(attrs.get("ceil_mode", 0)):
        raise ProfileError("ceil_mode=1 is not supported; use ceil_mode=0 with explicit pads", node=where)
    pads = _spatial_pads(attrs, (h, w), kernel, strides, where)
    ho = (h + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    wo = (w + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    if ho < 1 or wo < 1:
        raise ProfileError(f"kernel {kernel} does not fit the {h}x{w} input", node=where)
    rows = [np.arange(ho) * strides[0] - pads[0] + k for k in range(kernel[0])]
    cols = [np.arange(wo) * strides[1] - pads[1] + k for k in range(kernel[1])]
    return (ho, wo), rows, cols, (h, w)


def conv_matrix(shape: tuple[int, ...], weight: FloatArray, bias: FloatArray | None, attrs: dict[str, Any],
                where: str) -> tuple[FloatArray, FloatArray, tuple[int, ...]]:
    """Dense ``[C*H*W, Co*Ho*Wo]`` matrix and bias of an ONNX Conv on one flattened sample."""
    if int(attrs.get("group", 1)) != 1:
        raise ProfileError(f"grouped convolution (group={attrs['group']}) is not supported; export it as "
                           "group=1 with a block-diagonal kernel", node=where)
    if weight.ndim != 4:
        raise ProfileError(f"only 2-D convolutions are supported (weight {list(weight.shape)}); "
                           "reshape 1-D/3-D inputs to [N,C,H,W]", node=where)
    if weight.shape[1] != shape[0]:
        raise ProfileError(f"Conv weight {list(weight.shape)} does not match input channels {shape[0]}",
                           node=where)
    co, ci, kh, kw = weight.shape
    (ho, wo), rows, cols, (h, w) = _windows(shape, attrs, where, kernel=[kh, kw])
    t = np.zeros((ci * h * w, co * ho * wo))
    for a in range(kh):
        for b in range(kw):
            ih, iw = np.meshgrid(rows[a], cols[b], indexing="ij")
            p = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
            ok = ((ih >= 0) & (ih < h) & (iw >= 0) & (iw < w)).reshape(-1)
            src = (ih * w + iw).reshape(-1)[ok]
            dst = (p[0] * wo + p[1]).reshape(-1)[ok]
            r = np.arange(ci)[:, None, None] * h * w + src[None, None, :]
            c = np.arange(co)[None, :, None] * ho * wo + dst[None, None, :]
            t[r, c] += weight[:, :, a, b].T[:, :, None]
    vec = np.repeat(np.zeros(co) if bias is None else bias.reshape(-1), ho * wo)
    return t, vec, (co, ho, wo)


def pool_selections(
    shape: tuple[int, ...], attrs: dict[str, Any], where: str
) -> tuple[list[npt.NDArray[np.int64]], tuple[int, ...]]:
    """MaxPool: per window offset, the flat input index feeding each flat output (padding -> same window)."""
    (ho, wo), rows, cols, (h, w) = _windows(shape, attrs, where)
    c = shape[0]
    lo_r, hi_r = np.clip(rows[0], 0, h - 1), np.clip(rows[-1], 0, h - 1)
    lo_c, hi_c = np.clip(cols[0], 0, w - 1), np.clip(cols[-1], 0, w - 1)
    if np.any(rows[0] > h - 1) or np.any(rows[-1] < 0) or np.any(cols[0] > w - 1) or np.any(cols[-1] < 0):
        raise ProfileError("a pooling window lies entirely in the padding", node=where)
    out = []
    for r in rows:
        for q in cols:
            ih, iw = np.meshgrid(np.clip(r, lo_r, hi_r), np.clip(q, lo_c, hi_c), indexing="ij")
            flat = (ih * w + iw).reshape(-1)
            out.append((np.arange(c)[:, None] * h * w + flat[None, :]).reshape(-1))
    return out, (c, ho, wo)


def avgpool_matrix(shape: tuple[int, ...], attrs: dict[str, Any], where: str) -> tuple[FloatArray, tuple[int, ...]]:
    """AveragePool as a ``[C*H*W, C*Ho*Wo]`` matrix (count_include_pad as ONNX defines it)."""
    (ho, wo), rows, cols, (h, w) = _windows(shape, attrs, where)
    c = shape[0]
    n_k = len(rows) * len(cols)
    count = np.zeros((ho, wo))
    taps = []
    for r in rows:
        for q in cols:
            ih, iw = np.meshgrid(r, q, indexing="ij")
            ok = (ih >= 0) & (ih < h) & (iw >= 0) & (iw < w)
            count += ok
            taps.append((ih, iw, ok))
    denom = np.full((ho, wo), float(n_k)) if int(attrs.get("count_include_pad", 0)) else count
    m = np.zeros((c * h * w, c * ho * wo))
    oh, ow = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    for ih, iw, ok in taps:
        src = (ih * w + iw)[ok]
        dst = (oh * wo + ow)[ok]
        for ch in range(c):
            m[ch * h * w + src, ch * ho * wo + dst] += 1.0 / denom[ok]
    return m, (c, ho, wo)


# ------------------------------------------------------------------------------- graph walk


def extract_cnn(model: onnx.ModelProto | bytes) -> FloatCNN:
    """Read the chain of stages from the graph input to the first terminal op or the graph output."""
    graph, consts, inp, consumers = read_graph(model)
    dims = inp.type.tensor_type.shape.dim
    if len(dims) not in (2, 4) or not all(d.HasField("dim_value") for d in dims[1:]):
        raise ProfileError(f"input {inp.name!r} must be [batch, C, H, W] (or [batch, F]) with static sizes")
    in_shape = tuple(int(d.dim_value) for d in dims[1:])
    outputs = {o.name for o in graph.output}

    shape: tuple[int, ...] = in_shape
    n = math.prod(shape)
    mats: list[FloatArray] = [np.eye(n)]
    vecs: list[FloatArray] = [np.zeros(n)]
    relu = pooled = False
    stages: list[Stage] = []
    final: str | None = None
    cur = inp.name

    def close() -> None:
        nonlocal mats, vecs, relu, pooled
        stages.append(Stage(tuple(mats), tuple(vecs), relu))
        mats, vecs = [np.eye(math.prod(shape))], [np.zeros(math.prod(shape))]
        relu = pooled = False

    while cur not in outputs or cur == inp.name:
        users = consumers.get(cur, [])
        if not users:
            break
        if len(users) > 1 and not all(u.op_type in TERMINAL_OPS for _, u in users):
            raise ProfileError("branching float graphs (residual connections, concatenation) are not "
                               "supported by the CNN converter", node=_node_name(users[1][1], users[1][0]))
        index, node = users[0]
        where, op = _node_name(node, index), node.op_type
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if op in TERMINAL_OPS:
            _check_terminal_tail(node, consumers, where)
            final = op
            break
        if op in _LINEAR and (relu or pooled):
            close()
        if op in _SHAPE_ONLY:
            if op == "Reshape":
                target = consts.get(node.input[1]) if len(node.input) > 1 else None
                if target is None:
                    raise ProfileError("Reshape needs a constant shape", node=where)
                rest = [int(d) for d in target.reshape(-1)][1:]
                shape = tuple(rest) if rest and -1 not in rest else (math.prod(shape),)
            elif op == "Flatten":
                if int(attrs.get("axis", 1)) != 1:
                    raise ProfileError("Flatten must use axis=1 (keep the batch dimension)", node=where)
                shape = (math.prod(shape),)
        elif op == "Cast":
            if attrs.get("to") not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
                raise ProfileError("only float-to-float Cast can be dropped", node=where)
        elif op == "Relu":
            relu = True
        elif op == "MaxPool":
            if len(node.output) > 1 and node.output[1]:
                raise ProfileError("MaxPool's Indices output is not supported", node=where)
            sels, shape = pool_selections(shape, attrs, where)
            new_m: list[FloatArray] = []
            new_v: list[FloatArray] = []
            for m, v in zip(mats, vecs, strict=True):
                for s in sels:
                    cand_m, cand_v = m[:, s], v[s]
                    seen = zip(new_m, new_v, strict=True)
                    if not any(np.array_equal(cand_m, a) and np.array_equal(cand_v, b) for a, b in seen):
                        new_m.append(cand_m)
                        new_v.append(cand_v)
            mats, vecs, pooled = new_m, new_v, True
        elif op in _LINEAR:
            (m,), (v,) = mats, vecs
            m, v, shape = _linear(op, node, attrs, consts, shape, m, v, cur, where)
            mats, vecs = [m], [v]
        else:
            raise ProfileError(f"float op {node.domain + '.' if node.domain else ''}{op} is not supported by "
                               f"the CNN converter (supported: {', '.join(SUPPORTED)}, then a final Softmax)",
                               node=where)
        cur = node.output[0]
    if not stages and len(mats) == 1 and not relu and np.array_equal(mats[0], np.eye(len(mats[0]))):
        raise ProfileError("the float graph has no layers the CNN converter can lower")
    close()
    return FloatCNN(tuple(stages), in_shape, final)


def _check_terminal_tail(node: onnx.NodeProto, consumers: dict[str, Any], where: str) -> None:
    """A monotone final op (Softmax, ...) may only be followed by more of them: it must not sit mid-graph."""
    pending = list(node.output)
    while pending:
        for index, user in consumers.get(pending.pop(), []):
            if user.op_type not in TERMINAL_OPS and user.op_type not in _SHAPE_ONLY | {"Cast"}:
                raise ProfileError(f"float op {node.op_type} is only supported as the final activation, but "
                                   f"{user.op_type} {_node_name(user, index)!r} follows it; use Relu between "
                                   "layers", node=where)
            pending.extend(user.output)


def _linear(op: str, node: onnx.NodeProto, attrs: dict[str, Any], consts: dict[str, FloatArray],
            shape: tuple[int, ...], m: FloatArray, v: FloatArray, cur: str,
            where: str) -> tuple[FloatArray, FloatArray, tuple[int, ...]]:
    """Compose one affine op into the pending map ``(m, v)``; returns it and the new activation shape."""

    def const(name: str) -> FloatArray:
        if name not in consts:
            raise ProfileError(f"{op} operand {name!r} must be a constant for the converter", node=where)
        return consts[name]

    if node.input[0] != cur and op not in ("Add", "Mul", "Sub"):
        raise ProfileError(f"{op} must take the activations as its first input", node=where)
    if op == "Conv":
        bias = const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        t, tb, shape = conv_matrix(shape, const(node.input[1]), bias, attrs, where)
        return m @ t, v @ t + tb, shape
    if op == "AveragePool":
        p, shape = avgpool_matrix(shape, attrs, where)
        return m @ p, v @ p, shape
    n_ch = shape[0]
    per = math.prod(shape) // n_ch
    if op == "BatchNormalization":
        if len(node.output) > 1 and any(node.output[1:]):
            raise ProfileError("BatchNormalization in training mode is not supported; export in eval mode",
                               node=where)
        g, b, mean, var = (const(name).reshape(-1) for name in node.input[1:5])
        a = g / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
        a_flat, s_flat = np.repeat(a, per), np.repeat(b - mean * a, per)
        return m * a_flat, v * a_flat + s_flat, shape
    if op in ("Gemm", "MatMul"):
        if len(shape) != 1:
            raise ProfileError(f"{op} needs flat activations; add a Flatten before it", node=where)
        w = const(node.input[1])
        bias = np.zeros(w.shape[-1] if op == "MatMul" else 1)
        if op == "Gemm":
            if attrs.get("transA", 0):
                raise ProfileError("Gemm with transA=1 is not supported", node=where)
            w = (w.T if attrs.get("transB", 0) else w) * float(attrs.get("alpha", 1.0))
            if len(node.input) > 2 and node.input[2]:
                bias = const(node.input[2]).reshape(-1) * float(attrs.get("beta", 1.0))
        if w.ndim != 2 or w.shape[0] != shape[0]:
            raise ProfileError(f"{op} weight {list(w.shape)} does not follow width {shape[0]}", node=where)
        return m @ w, v @ w + np.broadcast_to(bias, (w.shape[1],)), (w.shape[1],)
    other = [name for name in node.input if name != cur]
    if len(other) != 1:
        raise ProfileError(f"{op} must combine the activations with one constant", node=where)
    c = np.broadcast_to(const(other[0]), (1, *shape)).reshape(-1)
    if op == "Add":
        return m, v + c, shape
    if op == "Sub":
        return (m, v - c, shape) if node.input[0] == cur else (-m, c - v, shape)
    if op == "Mul":
        return m * c, v * c, shape
    return m / c, v / c, shape
