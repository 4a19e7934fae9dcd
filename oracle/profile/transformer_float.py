"""The float encoder classifier the transformer converter reads: its shape, its numpy forward pass
(shared by the training script and the converter's self-check) and its ONNX graph, written and read.

Architecture (pre-LayerNorm encoder over image patches, pixels in, class logits out)::

    pixels [N, side*side] int64 (values 0 .. vocab-1), cut into seq = (side/patch)^2 patches of patch^2 pixels
    x = sum_j Gather(embed, pixel_j + j*vocab) + pos                  [N, seq, dim]
        (one vocab-row block of ``embed`` per position j inside the patch: a patch embedding that is
        a lookup per pixel value, so any function of each pixel's intensity)
    per layer i:  x += Wo (softmax(Q K^T / sqrt(dh)) V) + bo          (heads of dh = dim / heads)
                  with Q, K, V = LN1(x) Wq + bq, ...
                  x += W2 Relu(W1 LN2(x) + b1) + b2
    logits = flatten(LN(x)) Wh + bh                                   [N, classes] (Wh: [seq*dim, classes])

Initializers are named after the parameters (``embed``, ``pos``, ``layer{i}.q.w``, ``layer{i}.ln1.g``,
``head.w``, ...); :func:`read_onnx` takes them back by name and refuses a graph whose nodes are not
this architecture's. The converter then checks numerically that :func:`forward` reproduces
onnxruntime on the calibration samples, so a graph that merely looks right is refused too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from oracle.errors import ProfileError

__all__ = ["EPS", "TransformerShape", "export_onnx", "forward", "is_transformer", "read_onnx"]

EPS = 1e-5
OPSET = 17
IR_VERSION = 9


@dataclass(frozen=True)
class TransformerShape:
    vocab: int  # values a pixel may take
    side: int  # image side (pixels)
    patch: int  # patch side (pixels)
    dim: int
    heads: int
    ffn: int
    layers: int
    classes: int

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def grid(self) -> int:
        return self.side // self.patch

    @property
    def seq(self) -> int:
        return self.grid * self.grid

    @property
    def pixels(self) -> int:
        return self.side * self.side

    @property
    def per_patch(self) -> int:
        return self.patch * self.patch

    @property
    def patch_view(self) -> list[int]:
        """``[grid, patch, grid, patch]``: the image rows and columns split into patch rows/columns."""
        return [self.grid, self.patch, self.grid, self.patch]


def patch_indices(pixels: Any, s: TransformerShape) -> Any:
    """Rows of ``embed`` to gather: ``[N, seq, patch^2]``, pixel ``j`` of a patch offset by ``j * vocab``."""
    n = pixels.shape[0]
    t = np.asarray(pixels).reshape(n, *s.patch_view).transpose(0, 1, 3, 2, 4).reshape(n, s.seq, s.per_patch)
    return t + s.vocab * np.arange(s.per_patch)


def layer_norm(x: Any, g: Any, b: Any, xp: Any, eps: float = EPS) -> Any:
    mu = xp.mean(x, axis=-1, keepdims=True)
    c = x - mu
    var = xp.mean(c * c, axis=-1, keepdims=True)
    return c / xp.sqrt(var + eps) * g + b


def forward(p: dict[str, Any], tokens: Any, s: TransformerShape, xp: Any = np, eps: float = EPS,
            record: dict[str, float] | None = None) -> Any:
    """Logits ``[N, classes]`` of int pixels ``[N, side^2]``; ``xp`` is numpy or ``autograd.numpy``.

    ``record`` (numpy only) collects the largest magnitude of each kind of intermediate (``resid``,
    ``q``, ``k``, ``v``, ``ffn``, ``logits``) and the range of LayerNorm input variances (``var_min``,
    ``var_max``): the converter picks its fixed-point scales and square-root start from them.
    """
    n = tokens.shape[0]

    def seen(kind: str, t: Any) -> Any:
        if record is not None:
            record[kind] = max(record.get(kind, 0.0), float(np.abs(t).max()))
        return t

    def ln(x: Any, pre: str) -> Any:
        if record is not None:  # the spread of LayerNorm inputs, for the integer square root's start
            var = np.var(x, axis=-1)
            record["var_max"] = max(record.get("var_max", 0.0), float(var.max()))
            record["var_min"] = min(record.get("var_min", np.inf), float(var.min()))
        return layer_norm(x, p[pre + "g"], p[pre + "b"], xp, eps)

    x = seen("resid", xp.sum(p["embed"][patch_indices(tokens, s)], axis=2) + p["pos"])
    for i in range(s.layers):
        pre = f"layer{i}."
        h = ln(x, pre + "ln1.")

        def heads(m: str, h: Any = h, pre: str = pre) -> Any:
            t = xp.reshape(seen(m, xp.dot(h, p[pre + m + ".w"]) + p[pre + m + ".b"]), (n, s.seq, s.heads, s.head_dim))
            return xp.transpose(t, (0, 2, 1, 3))

        q, k, v = heads("q"), heads("k"), heads("v")
        sc = xp.matmul(q, xp.transpose(k, (0, 1, 3, 2))) / np.sqrt(s.head_dim)
        sc = sc - xp.max(sc, axis=-1, keepdims=True)
        e = xp.exp(sc)
        att = e / xp.sum(e, axis=-1, keepdims=True)
        o = xp.reshape(xp.transpose(xp.matmul(att, v), (0, 2, 1, 3)), (n, s.seq, s.dim))
        x = seen("resid", x + xp.dot(o, p[pre + "o.w"]) + p[pre + "o.b"])
        h2 = ln(x, pre + "ln2.")
        f = seen("ffn", xp.maximum(xp.dot(h2, p[pre + "ffn1.w"]) + p[pre + "ffn1.b"], 0.0))
        x = seen("resid", x + xp.dot(f, p[pre + "ffn2.w"]) + p[pre + "ffn2.b"])
    pooled = xp.reshape(ln(x, "ln."), (n, s.seq * s.dim))
    return seen("logits", xp.dot(pooled, p["head.w"]) + p["head.b"])


def export_onnx(p: dict[str, Any], s: TransformerShape, eps: float = EPS,
                producer: str = "oracle.profile.transformer_float") -> onnx.ModelProto:
    """The float32 graph of :func:`forward`: input ``pixels`` int64 ``[N, side^2]``, output ``logits``."""
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    for key, value in p.items():
        const(key, value)
    split = const("shape.heads", [0, s.seq, s.heads, s.head_dim], np.int64)
    merge = const("shape.merge", [0, s.seq, s.dim], np.int64)
    scale = const("attn.scale", 1.0 / np.sqrt(s.head_dim))

    def ln(x: str, pre: str) -> str:
        return node("LayerNormalization", [x, pre + ".g", pre + ".b"], f"/{pre}/LayerNorm", axis=-1, epsilon=eps)

    def linear(x: str, pre: str) -> str:
        return node("Add", [node("MatMul", [x, pre + ".w"], f"/{pre}/MatMul"), pre + ".b"], f"/{pre}/Add")

    view = const("shape.patches", [0, *s.patch_view], np.int64)
    rows = const("shape.patch_rows", [0, s.seq, s.per_patch], np.int64)
    offsets = const("embed.offsets", s.vocab * np.arange(s.per_patch), np.int64)
    t = node("Reshape", ["pixels", view], "/patch/Reshape")
    t = node("Transpose", [t], "/patch/Transpose", perm=[0, 1, 3, 2, 4])
    t = node("Add", [node("Reshape", [t, rows], "/patch/Rows"), offsets], "/embed/Offsets")
    gathered = node("Gather", ["embed", t], "/embed/Gather")
    x = node("Add", [node("ReduceSum", [gathered, const("axes.patch", [2], np.int64)], "/embed/ReduceSum",
                          keepdims=0), "pos"], "/pos/Add")
    for i in range(s.layers):
        pre = f"layer{i}"
        h = ln(x, pre + ".ln1")
        qkv = {m: node("Reshape", [linear(h, f"{pre}.{m}"), split], f"/{pre}/{m}/Reshape") for m in "qkv"}
        q = node("Transpose", [qkv["q"]], f"/{pre}/q/Transpose", perm=[0, 2, 1, 3])
        k = node("Transpose", [qkv["k"]], f"/{pre}/k/Transpose", perm=[0, 2, 3, 1])
        v = node("Transpose", [qkv["v"]], f"/{pre}/v/Transpose", perm=[0, 2, 1, 3])
        sc = node("Mul", [node("MatMul", [q, k], f"/{pre}/scores/MatMul"), scale], f"/{pre}/scores/Mul")
        att = node("Softmax", [sc], f"/{pre}/Softmax", axis=-1)
        o = node("Transpose", [node("MatMul", [att, v], f"/{pre}/context/MatMul")], f"/{pre}/context/Transpose",
                 perm=[0, 2, 1, 3])
        o = node("Reshape", [o, merge], f"/{pre}/context/Reshape")
        x = node("Add", [x, linear(o, pre + ".o")], f"/{pre}/attn/Residual")
        f = node("Relu", [linear(ln(x, pre + ".ln2"), pre + ".ffn1")], f"/{pre}/ffn/Relu")
        x = node("Add", [x, linear(f, pre + ".ffn2")], f"/{pre}/ffn/Residual")
    pooled = node("Reshape", [ln(x, "ln"), const("shape.flat", [0, s.seq * s.dim], np.int64)], "/flatten/Reshape")
    nodes.append(helper.make_node("Gemm", [pooled, "head.w", "head.b"], ["logits"], name="/head/Gemm"))
    graph = helper.make_graph(
        nodes, "digits_transformer",
        [helper.make_tensor_value_info("pixels", TensorProto.INT64, ["batch_size", s.pixels])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", s.classes])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name=producer)
    onnx.checker.check_model(model)
    return model


def is_transformer(model: onnx.ModelProto | bytes) -> bool:
    """Whether a float graph has LayerNormalization (so it needs the transformer converter)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load_model_from_string(bytes(model))
    return any(n.op_type == "LayerNormalization" for n in model.graph.node)


#: Node counts of one encoder layer and of the rest of the graph (embedding, final LN, pool, head).
_PER_LAYER = Counter({"LayerNormalization": 2, "MatMul": 8, "Add": 8, "Reshape": 4, "Transpose": 4,
                      "Mul": 1, "Softmax": 1, "Relu": 1})
_FIXED = Counter({"Reshape": 3, "Transpose": 1, "Gather": 1, "ReduceSum": 1, "Add": 2, "LayerNormalization": 1,
                  "Gemm": 1})


def read_onnx(model: onnx.ModelProto | bytes) -> tuple[dict[str, Any], TransformerShape, float]:
    """Parameters, shape and LayerNorm epsilon of a graph :func:`export_onnx` wrote (or one like it)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load_model_from_string(bytes(model))
    g = model.graph
    p = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    if not {"embed", "pos", "head.w", "embed.offsets", "shape.heads", "shape.patches"} <= p.keys():
        raise ProfileError("not an encoder classifier: the transformer converter needs initializers named "
                           "embed, embed.offsets, pos, shape.heads, shape.patches and head.w (see "
                           "oracle/profile/transformer_float.py)")
    layers = sum(1 for k in p if k.endswith(".ln1.g"))
    counts = Counter(n.op_type for n in g.node)
    expected = _FIXED + Counter({op: c * layers for op, c in _PER_LAYER.items()})
    if counts != expected:
        extra = sorted((counts - expected).keys()) or sorted((expected - counts).keys())
        raise ProfileError(f"the graph's nodes ({', '.join(extra)}) differ from the encoder classifier the "
                           "transformer converter reads; export it as oracle/profile/transformer_float.py does")
    split, view = (p["shape.heads"].astype(np.int64), p["shape.patches"].astype(np.int64))
    eps = next(a.f for n in g.node if n.op_type == "LayerNormalization" for a in n.attribute if a.name == "epsilon")
    patch, grid = int(view[2]), int(view[1])
    shape = TransformerShape(vocab=int(p["embed.offsets"][1]), side=grid * patch, patch=patch,
                             dim=int(p["embed"].shape[1]), heads=int(split[2]), ffn=int(p["layer0.ffn1.w"].shape[1]),
                             layers=layers, classes=int(p["head.w"].shape[1]))
    if p["embed"].shape[0] != shape.vocab * shape.per_patch or p["pos"].shape[0] != shape.seq:
        raise ProfileError("the embedding table or positions do not match the patch layout; export the model "
                           "as oracle/profile/transformer_float.py does")
    return p, shape, float(eps)
