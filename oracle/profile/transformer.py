"""Integer-only lowering of the encoder classifier (:mod:`oracle.profile.transformer_float`) to an
int64 ONNX graph of profile ops, in the spirit of I-BERT but with a lookup table for ``exp``.

Every tensor is an integer ``t`` standing for the real ``t * m`` (``m`` a power of two for activations,
any constant folded into the next weights for LayerNorm outputs). Per piece:

* Embedding: pixels ``Reshape``/``Transpose``d into ``[seq, patch^2]`` patches, ``Clip(., 0, vocab-1)``,
  ``Add`` the per-position row offsets, ``Gather`` of the quantized table ``[patch^2 * vocab, dim]``,
  ``ReduceSum`` over the patch, ``Add`` positions.
* Linear: ``MatMul`` with int8/16 weights (per-column power-of-two scale, the input's ``m`` and the
  previous LayerNorm's gamma folded in), ``Add`` bias, truncating ``Div`` by a power of two per column.
* LayerNorm: ``c = d*x - ReduceSum(x)`` (exactly ``d`` times ``x - mean``), ``v = ReduceSum(c*c) / 2^k``,
  ``std = isqrt(v)`` by unrolled Newton steps ``y <- Clip((y + v/y)/2, 1, y0)`` from ``y0 >= sqrt(max v)``
  (the ``Clip`` keeps ``y`` provably non-zero for the next ``Div``), then ``Clip(c * 2^F / std)``;
  the constant ``sqrt(d) / 2^(F + k/2)`` and gamma/beta go into the next linear layer.
* Softmax: ``s - ReduceMax(s)`` (<= 0) rounded to steps of ``2^-t``, clipped to the table's range and
  shifted to an index, ``Gather`` of ``rint(2^P exp(-i/2^t))``, ``Clip(ReduceSum, 1, .)`` (the row's
  maximum alone gives 2^P; the Clip makes "never zero" provable), then ``Clip(e * 2^R / sum, 0, 2^R)``:
  probabilities in ``2^-R`` units.
* Heads: ``Reshape``/``Transpose`` to ``[heads, seq, dh]`` and batched ``MatMul`` of two activations.
* Relu is ``Clip(., 0, hi)``; residual sums are clipped to ``+-2^14``; the head is a ``Reshape`` of the
  normalized tokens to one row and a ``MatMul``; the label is ``ArgMax``.

Every ``Max``/``Min``/``Clip``/``ReduceMax`` operand stays inside int32 and every product inside int64
whatever the input, by construction of the clip bounds (the compiler's interval analysis re-checks).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from oracle.errors import ProfileError
from oracle.profile.codec import IntArray, width_range
from oracle.profile.compiler import compile_onnx
from oracle.profile.converter import AccuracyReport, Conversion
from oracle.profile.fixed_point import IR_VERSION, OPSET, weight_shift
from oracle.profile.program import macs
from oracle.profile.quantizer import Quantizer
from oracle.profile.reference import run
from oracle.profile.transformer_float import TransformerShape, forward, read_onnx

__all__ = ["IntScales", "convert_transformer", "isqrt_steps", "lower", "ort_labels"]

RESID_BITS = 14  # residual stream clipped to +-2^14
VAR_BITS = 30  # LayerNorm variance brought to <= 2^30 before the square root
NORM_BITS = 10  # LayerNorm outputs about +-2^10
ACT_BITS = 13  # Q, K, V, attention context and FFN hidden clipped to +-2^13
EXP_BITS = 12  # exp table scale 2^12 (table entries 1 .. 4096)
EXP_STEP_BITS = 5  # table resolution 1/32 (513 entries)
EXP_RANGE = 16  # table covers exp(-16 .. 0)
PROB_BITS = 12  # attention probabilities in 1/4096
VAR_MARGIN = 16.0  # the square root is exact for variances 16x beyond the calibration range either way


@dataclass(frozen=True)
class IntScales:
    """Fixed-point exponents chosen from calibration magnitudes (real = int / 2^bits)."""

    resid: int
    qk: int
    v: int
    ffn: int
    weight_width: int
    var_lo: float = 1e-2  # real LayerNorm input variances the square root converges on exactly
    var_hi: float = 1e2


def choose_scales(stats: dict[str, float], weight_width: int, headroom: float = 2.0) -> IntScales:
    """Largest power-of-two scales that keep ``headroom`` times the calibration maxima inside the clips."""

    def bits(limit_bits: int, value: float) -> int:
        return int(math.floor(math.log2(2.0**limit_bits / (headroom * max(value, 1e-6)))))

    return IntScales(resid=bits(RESID_BITS, stats["resid"]), qk=bits(ACT_BITS, max(stats["q"], stats["k"])),
                     v=bits(ACT_BITS, stats["v"]), ffn=bits(ACT_BITS, stats["ffn"]), weight_width=weight_width,
                     var_lo=stats["var_min"] / VAR_MARGIN, var_hi=stats["var_max"] * VAR_MARGIN)


def isqrt_steps(y0: int, v: IntArray, top: int = 1 << (VAR_BITS // 2)) -> tuple[IntArray, int]:
    """The Newton iteration the graph unrolls, ``y <- clip((y + v // y) // 2, 1, top)`` from ``y0``: the
    results and how many steps it takes until every ``v`` has ``y`` in ``{isqrt(v), isqrt(v) + 1}``, a
    set the iteration never leaves (from below ``sqrt(v)`` the first step lands above it, and from above
    the sequence decreases until it enters the set; ``top >= sqrt(max v)``)."""
    root = np.array([math.isqrt(int(a)) for a in v], dtype=np.int64)
    y = np.full(v.shape, y0, dtype=np.int64)
    steps = 0
    while not np.all((y == root) | (y == root + 1)):
        y = np.clip((y + v // y) // 2, 1, top)
        steps += 1
    return y, steps


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.count = 0

    def const(self, value: Any, name: str | None = None) -> str:
        self.count += 1
        name = name or f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.int64), name))
        return name

    def op(self, op_type: str, ins: list[str], name: str, **attrs: Any) -> str:
        self.count += 1
        out = f"{name}#{self.count}"
        self.nodes.append(helper.make_node(op_type, ins, [out], name=out, **attrs))
        return out

    def clip(self, x: str, lo: int, hi: int, name: str) -> str:
        return self.op("Clip", [x, self.const(lo), self.const(hi)], name)


@dataclass
class _Act:
    """An integer tensor ``name`` whose real value is ``int * mult`` (mult may be any positive float)."""

    name: str
    mult: float


class _Lowering:
    def __init__(self, p: dict[str, Any], s: TransformerShape, sc: IntScales) -> None:
        self.p, self.s, self.sc, self.g = p, s, sc, _Graph()
        self.wmax = width_range(sc.weight_width)[1]
        # LayerNorm constants: c = d*x - sum(x) is within +-2^(RESID_BITS+1) * d.
        c_bits = RESID_BITS + 1 + math.ceil(math.log2(s.dim))
        sq_bits = 2 * c_bits + math.ceil(math.log2(s.dim))
        self.var_shift = max(0, sq_bits - VAR_BITS + 1) // 2 * 2  # even, so 2^(k/2) is exact
        # Newton starts at the geometric middle of the variances seen in calibration (with margin) and
        # unrolls enough steps to reach isqrt exactly on that range; beyond it the root is approximate
        # (fewer ops; the integers are still one exact program for every input).
        top = 1 << (VAR_BITS // 2)
        to_int = s.dim**3 * 2.0 ** (2 * sc.resid - self.var_shift)
        lo = int(min(max(1.0, sc.var_lo * to_int), 2.0**VAR_BITS))
        hi = int(min(max(float(lo), sc.var_hi * to_int), 2.0**VAR_BITS))
        self.y0 = max(1, math.isqrt(math.isqrt(lo * hi)))
        probe = np.unique(np.concatenate([np.geomspace(lo, hi, 4000).astype(np.int64), [lo, hi]]))
        self.newton_steps = isqrt_steps(self.y0, probe, top)[1]
        self.newton_top = top
        self.norm_f = max(0, NORM_BITS - self.var_shift // 2)
        self.c_bits = c_bits

    # ---------------------------------------------------------------- pieces

    def linear(self, a: _Act, w: Any, b: Any, out_bits: int | None, name: str,
               gamma: Any = None, beta: Any = None) -> _Act:
        """``a @ w + b`` (after ``a * gamma + beta`` if given) rescaled to ``2^-out_bits`` (None: no rescale)."""
        w, b = np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if gamma is not None:
            b = b + np.asarray(beta) @ w
            w = np.asarray(gamma)[:, None] * w
        w_eff = w * a.mult
        shifts = np.array([weight_shift(float(c), self.wmax) for c in np.abs(w_eff).max(axis=0)])
        if out_bits is None:
            shifts = np.full(shifts.shape, shifts.min())
        w_int = np.clip(np.rint(w_eff * np.exp2(shifts)), -self.wmax, self.wmax).astype(np.int64)
        b_int = np.rint(b * np.exp2(shifts)).astype(np.int64).reshape(1, -1)
        z = self.g.op("Add", [self.g.op("MatMul", [a.name, self.g.const(w_int)], name), self.g.const(b_int)], name)
        if out_bits is None:
            return _Act(z, 2.0 ** -int(shifts.min()))
        out = min(out_bits, int(shifts.min()))
        div = (np.int64(1) << (shifts - out).astype(np.int64)).reshape(1, -1)
        if div.max() > 1:
            z = self.g.op("Div", [z, self.g.const(div)], name)
        return _Act(z, 2.0**-out)

    def layer_norm(self, x: _Act, name: str) -> _Act:
        """Normalized ``x`` (rows of ``dim``) without gamma/beta; its ``mult`` carries sqrt(d)/2^(F+k/2)."""
        g, d = self.g, self.s.dim
        total = g.op("ReduceSum", [x.name, g.const([1])], name, keepdims=1)
        c = g.op("Sub", [g.op("Mul", [x.name, g.const(d)], name), total], name)
        v = g.op("ReduceSum", [g.op("Mul", [c, c], name), g.const([1])], name, keepdims=1)
        if self.var_shift:
            v = g.op("Div", [v, g.const(1 << self.var_shift)], name)
        y = g.const(self.y0)
        two, one, top = g.const(2), g.const(1), g.const(self.newton_top)
        for _ in range(self.newton_steps):
            y = g.op("Clip", [g.op("Div", [g.op("Add", [y, g.op("Div", [v, y], name)], name), two], name), one, top],
                     name)
        n = g.op("Div", [g.op("Mul", [c, g.const(1 << self.norm_f)], name), y], name)
        bound = 1 << (self.norm_f + self.var_shift // 2 + 1)
        return _Act(g.clip(n, -bound, bound, name), math.sqrt(d) / 2.0 ** (self.norm_f + self.var_shift // 2))

    def softmax_rows(self, scores: str, score_bits: int, name: str) -> str:
        """Probabilities (in ``2^-PROB_BITS``) along the last axis of integer scores in ``2^-score_bits``."""
        g = self.g
        top = g.op("ReduceMax", [scores], name, axes=[-1], keepdims=1)
        delta = g.op("Sub", [scores, top], name)  # <= 0
        span = EXP_RANGE << EXP_STEP_BITS
        shift = score_bits - EXP_STEP_BITS
        if shift > 0:  # round half away from zero: delta <= 0 and Div truncates
            delta = g.op("Div", [g.op("Sub", [delta, g.const(1 << (shift - 1))], name), g.const(1 << shift)], name)
        elif shift < 0:
            delta = g.op("Mul", [delta, g.const(1 << -shift)], name)
        idx = g.op("Add", [g.clip(delta, -span, 0, name), g.const(span)], name)
        table = np.rint(2.0**EXP_BITS * np.exp((np.arange(span + 1) - span) / 2.0**EXP_STEP_BITS))
        e = g.op("Gather", [g.const(table.astype(np.int64)), idx], name, axis=0)
        # The row maximum contributes 2^EXP_BITS, so the sum is >= 1 anyway; the Clip lets the compiler see it.
        total = g.clip(g.op("ReduceSum", [e, g.const([-1])], name, keepdims=1), 1, (1 << EXP_BITS) * self.s.seq, name)
        prob = g.op("Div", [g.op("Mul", [e, g.const(1 << PROB_BITS)], name), total], name)
        return g.clip(prob, 0, 1 << PROB_BITS, name)

    def attention(self, x: _Act, i: int) -> _Act:
        g, s, p, pre = self.g, self.s, self.p, f"layer{i}."
        n = self.layer_norm(x, f"{pre}ln1")
        ln = (p[pre + "ln1.g"], p[pre + "ln1.b"])
        amax = 1 << ACT_BITS
        qk_scale = 1.0 / math.sqrt(s.head_dim)
        acts = {}
        for m, bits, scale in (("q", self.sc.qk, qk_scale), ("k", self.sc.qk, 1.0), ("v", self.sc.v, 1.0)):
            a = self.linear(n, p[pre + m + ".w"] * scale, p[pre + m + ".b"] * scale, bits, pre + m, *ln)
            acts[m] = _Act(g.clip(a.name, -amax, amax, pre + m), a.mult)
        split = g.const([s.seq, s.heads, s.head_dim])
        q = g.op("Transpose", [g.op("Reshape", [acts["q"].name, split], pre + "q")], pre + "q", perm=[1, 0, 2])
        k = g.op("Transpose", [g.op("Reshape", [acts["k"].name, split], pre + "k")], pre + "k", perm=[1, 2, 0])
        v = g.op("Transpose", [g.op("Reshape", [acts["v"].name, split], pre + "v")], pre + "v", perm=[1, 0, 2])
        score_bits = round(-math.log2(acts["q"].mult * acts["k"].mult))
        prob = self.softmax_rows(g.op("MatMul", [q, k], pre + "scores"), score_bits, pre + "softmax")
        ctx = g.op("Div", [g.op("MatMul", [prob, v], pre + "context"), g.const(1 << PROB_BITS)], pre + "context")
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], pre + "context", perm=[1, 0, 2]),
                               g.const([s.seq, s.dim])], pre + "context")
        ctx_act = _Act(g.clip(ctx, -amax, amax, pre + "context"), acts["v"].mult)
        out = self.linear(ctx_act, p[pre + "o.w"], p[pre + "o.b"], self.sc.resid, pre + "o")
        return self.residual(x, out, pre + "attn")

    def feed_forward(self, x: _Act, i: int) -> _Act:
        pre = f"layer{i}."
        n = self.layer_norm(x, f"{pre}ln2")
        h = self.linear(n, self.p[pre + "ffn1.w"], self.p[pre + "ffn1.b"], self.sc.ffn, pre + "ffn1",
                        self.p[pre + "ln2.g"], self.p[pre + "ln2.b"])
        h = _Act(self.g.clip(h.name, 0, 1 << ACT_BITS, pre + "relu"), h.mult)
        out = self.linear(h, self.p[pre + "ffn2.w"], self.p[pre + "ffn2.b"], self.sc.resid, pre + "ffn2")
        return self.residual(x, out, pre + "ffn")

    def residual(self, x: _Act, y: _Act, name: str) -> _Act:
        if not math.isclose(x.mult, y.mult):
            raise AssertionError("residual operands at different scales")
        r = 1 << RESID_BITS
        return _Act(self.g.clip(self.g.op("Add", [x.name, y.name], name), -r, r, name), x.mult)

    # ---------------------------------------------------------------- the graph

    def build(self, quantizer: Quantizer) -> onnx.ModelProto:
        g, s, p = self.g, self.s, self.p
        r, f = 1 << RESID_BITS, self.sc.resid
        view = g.op("Reshape", ["input", g.const(s.patch_view)], "patches")
        rows = g.op("Reshape", [g.op("Transpose", [view], "patches", perm=[0, 2, 1, 3]),
                                g.const([s.seq, s.per_patch])], "patches")
        # Clip first: the Gather's indices must provably lie in the table (hostile pixels included).
        idx = g.op("Add", [g.clip(rows, 0, s.vocab - 1, "pixels"), g.const(s.vocab * np.arange(s.per_patch))], "embed")
        table = np.clip(np.rint(p["embed"] * 2.0**f), -r // 8, r // 8).astype(np.int64)
        pos = np.clip(np.rint(p["pos"] * 2.0**f), -r // 2, r // 2).astype(np.int64)
        patches = g.op("ReduceSum", [g.op("Gather", [g.const(table), idx], "embed", axis=0), g.const([1])], "embed",
                       keepdims=0)
        emb = g.op("Add", [patches, g.const(pos)], "embed")
        x = _Act(g.clip(emb, -r, r, "embed"), 2.0**-f)
        for i in range(s.layers):
            x = self.feed_forward(self.attention(x, i), i)
        n = self.layer_norm(x, "ln")
        flat = _Act(g.op("Reshape", [n.name, g.const([1, s.seq * s.dim])], "flatten"), n.mult)
        logits = self.linear(flat, p["head.w"], p["head.b"], None, "head", np.tile(p["ln.g"], s.seq),
                             np.tile(p["ln.b"], s.seq))
        g.nodes.append(helper.make_node("ArgMax", [logits.name], ["label"], name="ArgMax", axis=1, keepdims=0))
        graph = helper.make_graph(
            g.nodes, "integer_profile_transformer",
            [helper.make_tensor_value_info("input", TensorProto.INT64, list(quantizer.shape))],
            [helper.make_tensor_value_info("label", TensorProto.INT64, [1])],
            initializer=g.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                                  producer_name="oracle.profile.transformer")
        onnx.checker.check_model(model)
        return model


def lower(p: dict[str, Any], s: TransformerShape, scales: IntScales, quantizer: Quantizer) -> onnx.ModelProto:
    """The int64 profile graph of the float parameters ``p``: input ``quantizer.shape`` tokens, label ``[1]``."""
    return _Lowering(p, s, scales).build(quantizer)


def ort_labels(model: onnx.ModelProto, q: IntArray) -> npt.NDArray[np.int64]:
    """Labels onnxruntime computes with an integer graph, one quantized sample ``[1, ...]`` per run."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return np.array([int(sess.run(None, {name: row.reshape(dims)})[0][0]) for row in np.asarray(q, dtype=np.int64)],
                    dtype=np.int64)


def convert_transformer(
    float_model: onnx.ModelProto | bytes,
    x_calib: npt.ArrayLike,
    y_calib: npt.ArrayLike,
    x_test: npt.ArrayLike | None = None,
    y_test: npt.ArrayLike | None = None,
    weight_width: int | None = None,
    max_calib_drop: float = 0.005,
    progress: Callable[[str], None] | None = None,
) -> Conversion:
    """Convert a float encoder classifier (int pixels ``[N, side^2]``) to an integer-profile graph with a report.

    Same contract as :func:`oracle.profile.cnn.convert_cnn`: ``weight_width`` ``None`` tries 1 then 2
    bytes and keeps the first within ``max_calib_drop`` of the float calibration accuracy.
    """
    say = progress or (lambda _msg: None)
    model = float_model if isinstance(float_model, onnx.ModelProto) else onnx.load_model_from_string(float_model)
    p, shape, eps = read_onnx(model)
    if shape.vocab > 128:
        raise ProfileError(f"vocabulary of {shape.vocab} tokens; the converter takes 1-byte tokens (at most 128)")
    xc = np.asarray(x_calib).astype(np.int64).reshape(-1, shape.pixels)
    yc = np.asarray(y_calib).astype(np.int64)
    ref = _float_labels(model, xc)
    stats: dict[str, float] = {}
    mine = np.asarray(forward(p, xc, shape, np, eps, stats)).argmax(axis=1)
    agree = float(np.mean(mine == ref))
    if agree < 0.99:
        raise ProfileError(f"the encoder read from the graph agrees with onnxruntime on only {agree:.1%} of the "
                           "calibration samples; export the model as oracle/profile/transformer_float.py does")
    quantizer = Quantizer.identity(shape.pixels, 1, (1, shape.pixels))
    float_calib = float(np.mean(ref == yc))
    fitted = None
    for width in (weight_width,) if weight_width is not None else (1, 2):
        say(f"lowering with {width}-byte weights and compiling")
        int_model = lower(p, shape, choose_scales(stats, width), quantizer)
        fitted = int_model, compile_onnx(int_model, quantizer.width, 1)  # interval analysis: every bound holds
        if float(np.mean(ort_labels(int_model, xc) == yc)) >= float_calib - max_calib_drop:
            break
    assert fitted is not None
    int_model, program = fitted
    xt = xc if x_test is None else np.asarray(x_test).astype(np.int64).reshape(-1, shape.pixels)
    yt = yc if y_test is None else np.asarray(y_test).astype(np.int64)
    say(f"scoring {len(xt)} samples with onnxruntime and the reference interpreter")
    int_pred = ort_labels(int_model, xt)
    ref_pred = np.array([int(run(program, row.reshape(quantizer.shape))[0]) for row in xt], dtype=np.int64)
    if not np.array_equal(int_pred, ref_pred):
        raise ProfileError("onnxruntime and the reference interpreter disagree on the lowered transformer; "
                           "report this as a bug with the model")
    flt_pred = _float_labels(model, xt)
    report = AccuracyReport(
        float_accuracy=float(np.mean(flt_pred == yt)),
        int_accuracy=float(np.mean(int_pred == yt)),
        agreement=float(np.mean(int_pred == flt_pred)),
        n_samples=len(yt),
        weight_width=width,
        activation_bits=(),
        notes=(f"macs={macs(program)}", f"ops={len(program.ops)}"),
    )
    return Conversion(int_model, quantizer, report)


def _float_labels(model: onnx.ModelProto, tokens: IntArray) -> npt.NDArray[np.int64]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: np.asarray(tokens, dtype=np.int64)})[0]
    return np.asarray(np.argmax(logits, axis=1), dtype=np.int64)
