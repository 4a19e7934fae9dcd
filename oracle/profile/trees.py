"""Converter from tree ensembles (scikit-learn, XGBoost, LightGBM) to integer-profile ONNX.

The float trees are read by :mod:`oracle.profile.trees_read`. Features are quantized client side by a
:class:`~oracle.profile.quantizer.Quantizer` (``q = clip(rint((x - offset) * scale))``) and every
threshold ``t`` is mapped onto the same grid, ``v = (t - offset) * scale``, as an integer ``T`` with
the integer rule **right iff q > T**: ``T = floor(v)`` for ``x <= t -> left`` (scikit-learn, LightGBM)
and ``T = ceil(v) - 1`` for ``x < t -> left`` (XGBoost). So the integer tree takes the float tree's
branch whenever ``q`` and ``(x - offset) * scale`` lie on the same side of ``v``, i.e. always except
when a feature is within half a quantum of a threshold (or saturated by the quantizer's clip).

*Box form.* Each reachable leaf is the box ``lo_f < q_f <= hi_f`` (one interval per feature) cut out by
its path. The program tests every leaf's box at once, with no traversal and no data-dependent control:

``qs = q @ SEL`` (only if some features are unused), as a column ``[F, 1]``;
``below = Clip(qs - (LO + 1), -1, 0)``, ``above = Clip(qs - HI, 0, 1)`` (``[F, leaves]``: -1 / 1 where
the feature lies below / above the leaf's interval); ``outside = 1 @ above - 1 @ below`` (``[1, leaves]``
MatMuls with a row of ones: how many features leave the box); ``leaf = Clip(1 - outside, 0, 1)``
(exactly one 1 per tree); ``score = leaf @ V + BASE``, then ``ArgMax`` (``K`` scores) or
``Clip(score, 0, 1)`` (binary margin: class 1 iff score > 0).

Leaf values and the base are stored at scale ``2^s`` (``round(value * 2^s)``, ``s`` the largest
power keeping every leaf in ``leaf_width`` bytes), so the score differs from ``2^s`` times the float
score by at most half a unit per tree and per base. :func:`convert_trees` reports how often the integer
decision differs from the float model's, and whether each difference is explained by a threshold
within one quantum of a feature on the float path, or by a float score margin below the rounding bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from oracle.errors import ProfileError
from oracle.profile.codec import IntArray, width_range
from oracle.profile.compiler import compile_onnx
from oracle.profile.fixed_point import IR_VERSION, OPSET
from oracle.profile.program import Program
from oracle.profile.quantizer import Quantizer
from oracle.profile.reference import run
from oracle.profile.trees_read import FloatArray, TreeEnsemble, load_tree_model, read_ensemble

__all__ = ["convert_trees", "load_tree_model", "quantize_trees", "to_onnx"]

#: Leaves x features above which the program is refused (the on-chain proof would not fit a block).
MAX_BOX_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class IntTrees:
    """The integer ensemble in box form (see module doc); ``predict_index`` is the emitted arithmetic."""

    features: tuple[int, ...]  # input columns the boxes test (SEL selects them when fewer than all)
    n_inputs: int
    lo: IntArray  # [L, Fu]: q > lo
    hi: IntArray  # [L, Fu]: q <= hi
    values: IntArray  # [L, K]
    base: IntArray  # [K]
    leaf_shift: int  # values are round(float * 2^leaf_shift)
    binary_margin: bool
    n_trees: int
    trees_per_output: tuple[int, ...]  # trees contributing to each score column

    @property
    def n_leaves(self) -> int:
        return int(self.lo.shape[0])

    def scores(self, q: npt.ArrayLike) -> IntArray:
        """Integer scores ``[N, K]`` of quantized inputs, in chunks (same values as the program)."""
        qa = np.asarray(q, dtype=np.int64).reshape(-1, self.n_inputs)[:, list(self.features)]
        out = np.empty((len(qa), self.values.shape[1]), dtype=np.int64)
        step = max(1, 2_000_000 // max(1, self.lo.size))
        for i in range(0, len(qa), step):
            b = qa[i : i + step, None, :]
            inside = np.all((b > self.lo[None]) & (b <= self.hi[None]), axis=2).astype(np.int64)
            out[i : i + step] = inside @ self.values + self.base
        return out

    def predict_index(self, q: npt.ArrayLike) -> IntArray:
        s = self.scores(q)
        if self.binary_margin:
            return (s[:, 0] > 0).astype(np.int64)
        result: IntArray = np.argmax(s, axis=1).astype(np.int64)
        return result


def threshold_grid(ens: TreeEnsemble, quantizer: Quantizer, feature: int, t: float) -> float:
    """Where a float threshold lies on the integer grid of its feature (``v`` in the module doc)."""
    return (t - quantizer.offset[feature]) * quantizer.scale[feature]


def int_threshold(ens: TreeEnsemble, v: float) -> int:
    return math.floor(v) if ens.left_if_equal else math.ceil(v) - 1


def _leaf_shift(ens: TreeEnsemble, leaf_width: int) -> int:
    top = max(float(np.abs(t.value).max()) for t in ens.trees)
    wmax = width_range(leaf_width)[1]
    if top <= 0:
        return 0
    return min(40, math.floor(math.log2(wmax / top)))


def quantize_trees(ens: TreeEnsemble, quantizer: Quantizer, leaf_width: int = 2,
                   leaf_shift: int | None = None) -> IntTrees:
    """Leaf boxes on the integer grid and integer leaf values (see module doc); ``leaf_shift`` defaults to
    the largest keeping every leaf inside ``leaf_width`` bytes."""
    if quantizer.n_features != ens.n_features:
        raise ProfileError(f"quantizer has {quantizer.n_features} features, the model has {ens.n_features}")
    qmin, qmax = width_range(quantizer.width)
    shift = _leaf_shift(ens, leaf_width) if leaf_shift is None else leaf_shift
    scale = 2.0**shift
    los: list[IntArray] = []
    his: list[IntArray] = []
    vals: list[FloatArray] = []
    for tree in ens.trees:
        stack = [(0, np.full(ens.n_features, qmin - 1, dtype=np.int64), np.full(ens.n_features, qmax, np.int64))]
        while stack:
            node, lo, hi = stack.pop()
            f = int(tree.feature[node])
            if f < 0:
                los.append(lo)
                his.append(hi)
                vals.append(tree.value[node])
                continue
            t_int = int_threshold(ens, threshold_grid(ens, quantizer, f, float(tree.threshold[node])))
            if t_int < hi[f]:  # right branch q > max(lo, T) can be reached
                rlo = lo.copy()
                rlo[f] = max(lo[f], t_int)
                stack.append((int(tree.right[node]), rlo, hi))
            if t_int > lo[f]:  # left branch q <= min(hi, T) can be reached
                lhi = hi.copy()
                lhi[f] = min(hi[f], t_int)
                stack.append((int(tree.left[node]), lo, lhi))
    lo_all = np.array(los, dtype=np.int64)
    hi_all = np.array(his, dtype=np.int64)
    used = tuple(int(f) for f in np.nonzero(np.any(lo_all >= qmin, axis=0) | np.any(hi_all < qmax, axis=0))[0])
    if not used:  # every tree is a single leaf: keep one feature so the program reads its input
        used = (0,)
    wmax = width_range(leaf_width)[1]
    values = np.clip(np.rint(np.array(vals) * scale), -wmax, wmax).astype(np.int64)
    base = np.rint(ens.base * scale).astype(np.int64)
    counts = tuple(int(np.sum([np.any(t.value != 0, axis=0)[k] for t in ens.trees])) for k in range(len(ens.base)))
    return IntTrees(used, ens.n_features, lo_all[:, used], hi_all[:, used], values, base, shift,
                    ens.binary_margin, len(ens.trees), counts)


def to_onnx(it: IntTrees, quantizer: Quantizer) -> onnx.ModelProto:
    """The integer-profile ONNX graph of ``it`` (int64 everywhere, one label ``[1]`` out)."""
    n_leaves, n_used = it.lo.shape
    inits = []

    def const(name: str, arr: npt.ArrayLike) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.int64), name))
        return name

    nodes = []

    def node(op: str, ins: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    cur = "input"
    if n_used < it.n_inputs:
        sel = np.zeros((it.n_inputs, n_used), dtype=np.int64)
        sel[list(it.features), np.arange(n_used)] = 1
        cur = node("MatMul", [cur, const("select", sel)], "features")
    cur = node("Reshape", [cur, const("column_shape", np.array([n_used, 1]))], "features.column")
    # [features, leaves] layout: the reductions below are [1, F] x [F, L] MatMuls (one row, cheap on-chain).
    below = node("Sub", [cur, const("box.lo_plus_1", (it.lo + 1).T)], "box.minus_lo")
    below = node("Clip", [below, const("minus_one", np.array(-1)), const("zero", np.array(0))], "box.below")
    above = node("Sub", [cur, const("box.hi", it.hi.T)], "box.minus_hi")
    above = node("Clip", [above, "zero", const("one", np.array(1))], "box.above")
    ones = const("ones", np.ones((1, n_used)))
    n_above = node("MatMul", [ones, above], "leaf.features_above")
    n_below = node("MatMul", [ones, below], "leaf.minus_features_below")
    outside = node("Sub", [n_above, n_below], "leaf.features_outside")
    leaf = node("Sub", ["one", outside], "leaf.one_minus_outside")
    leaf = node("Clip", [leaf, "zero", "one"], "leaf.reached")
    score = node("MatMul", [leaf, const("leaf.values", it.values)], "score.trees")
    score = node("Add", [score, const("score.base", it.base.reshape(1, -1))], "score")
    if it.binary_margin:
        label = node("Clip", [score, "zero", "one"], "score.positive")
        node("Reshape", [label, const("label_shape", np.array([1]))], "label")
    else:
        node("ArgMax", [score], "label", axis=1, keepdims=0)
    graph = helper.make_graph(
        nodes,
        "integer_profile_trees",
        [helper.make_tensor_value_info("input", TensorProto.INT64, list(quantizer.shape))],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="oracle.profile.trees")
    onnx.checker.check_model(model)
    return model


# --------------------------------------------------------------------------------------------------
# Accuracy report
# --------------------------------------------------------------------------------------------------


def near_threshold(
    ens: TreeEnsemble, quantizer: Quantizer, x: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Samples whose float path passes a threshold within one quantum of the feature (or across the
    quantizer's clip), and the subset where the feature is not exactly on the integer grid.

    Only the second kind can take a different branch: if ``u = (x - offset) * scale`` is an integer
    inside the input range (and unchanged by the library's float32 cast) then ``q = u`` exactly, and the
    node is exempt when ``u > T`` agrees with the float comparison (``u != v`` always does).
    """
    x64 = np.asarray(x, dtype=np.float64)
    xs = ens.prepare(x64)
    off, sc = np.asarray(quantizer.offset), np.asarray(quantizer.scale)
    u = (x64 - off) * sc
    qmin, qmax = width_range(quantizer.width)
    uc = np.clip(u, qmin, qmax)
    on_grid = (u == np.rint(u)) & (u == uc) & (xs == x64)
    near = np.zeros(len(xs), dtype=bool)
    rounded = np.zeros(len(xs), dtype=bool)
    rows = np.arange(len(xs))
    for tree in ens.trees:
        node = np.zeros(len(xs), dtype=np.int64)
        while True:
            f = tree.feature[node]
            active = f >= 0
            if not active.any():
                break
            fi = np.where(active, f, 0)
            v = (tree.threshold[node] - off[fi]) * sc[fi]
            uf, ucf = u[rows, fi], uc[rows, fi]
            close = (np.abs(uf - v) < 1.0) | ((np.minimum(uf, ucf) <= v) & (v <= np.maximum(uf, ucf)))
            xv, thr = xs[rows, fi], tree.threshold[node]
            go_left = xv <= thr if ens.left_if_equal else xv < thr
            t_int = np.floor(v) if ens.left_if_equal else np.ceil(v) - 1
            exact = on_grid[rows, fi] & ((uf > t_int) == ~go_left)  # q = u: no rounding, same branch
            near |= active & close
            rounded |= active & close & ~exact
            node = np.where(active, np.where(go_left, tree.left[node], tree.right[node]), node)
    return near, rounded


def near_margin(ens: TreeEnsemble, it: IntTrees, float_scores: FloatArray) -> npt.NDArray[np.bool_]:
    """Samples whose float decision margin is within the leaf/base rounding bound (or a tie)."""
    s = float_scores * 2.0**it.leaf_shift
    per = np.asarray(it.trees_per_output, dtype=np.float64) * 0.5 + 0.5  # max rounding error per column
    if ens.binary_margin:
        return np.asarray(np.abs(s[:, 0]) <= per[0], dtype=bool)
    top = np.argmax(s, axis=1)
    rows = np.arange(len(s))
    gap = s[rows, top][:, None] - s  # >= 0
    bound = per[top][:, None] + per[None, :]
    mask = np.ones_like(gap, dtype=bool)
    mask[rows, top] = False
    return np.asarray(np.any(mask & (gap <= bound), axis=1), dtype=bool)


@dataclass(frozen=True)
class TreeReport:
    library: str
    float_accuracy: float
    int_accuracy: float
    agreement: float
    disagreements: int
    near_threshold: int  # samples with a threshold within one quantum of a feature on the float path
    near_threshold_off_grid: int  # ... of which the feature is not exactly on the grid (can round across)
    near_margin: int  # samples whose float margin is within the score rounding bound
    unexplained: int  # disagreements neither off-grid near a threshold nor near the margin (claim: 0)
    n_samples: int
    n_trees: int
    n_leaves: int
    n_features_used: int
    leaf_shift: int
    class_labels: tuple[int, ...] | None

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "class_labels"}
        return d


class TreeConversion(NamedTuple):
    model: onnx.ModelProto
    program: Program
    quantizer: Quantizer
    ensemble: TreeEnsemble
    int_trees: IntTrees
    report: TreeReport


def float_predict(model: Any, ens: TreeEnsemble, x: FloatArray) -> IntArray:
    """Class indices the float library model predicts (its own predict / raw score)."""
    if hasattr(model, "predict") and ens.class_labels is not None and hasattr(model, "classes_"):
        pred = np.asarray(model.predict(x)).reshape(-1)
        index = {int(c): i for i, c in enumerate(ens.class_labels)}
        return np.array([index[int(v)] for v in pred], dtype=np.int64)
    return ens.decide(ens.scores(x))


def report(model: Any, conv_parts: tuple[TreeEnsemble, IntTrees, Program, Quantizer], x: npt.ArrayLike,
           y: npt.ArrayLike, use_program: bool = True) -> TreeReport:
    """Float vs integer decisions on held-out ``x``/``y`` (labels as the model's class values)."""
    ens, it, program, quantizer = conv_parts
    xs = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y).astype(np.int64)
    if ens.class_labels is not None:
        index = {c: i for i, c in enumerate(ens.class_labels)}
        ya = np.array([index.get(int(v), -1) for v in ya], dtype=np.int64)
    q = quantizer.quantize(xs)
    if use_program:
        int_pred = np.array([int(run(program, q[i].reshape(quantizer.shape))[0]) for i in range(len(q))])
    else:
        int_pred = it.predict_index(q)
    flt = float_predict(model, ens, xs)
    differ = int_pred != flt
    nt_any, nt = near_threshold(ens, quantizer, xs)
    nm = near_margin(ens, it, ens.scores(xs))
    return TreeReport(
        library=ens.library,
        float_accuracy=float(np.mean(flt == ya)),
        int_accuracy=float(np.mean(int_pred == ya)),
        agreement=float(np.mean(~differ)),
        disagreements=int(differ.sum()),
        near_threshold=int(nt_any.sum()),
        near_threshold_off_grid=int(nt.sum()),
        near_margin=int(nm.sum()),
        unexplained=int((differ & ~nt & ~nm).sum()),
        n_samples=len(xs),
        n_trees=it.n_trees,
        n_leaves=it.n_leaves,
        n_features_used=len(it.features),
        leaf_shift=it.leaf_shift,
        class_labels=ens.class_labels,
    )


def convert_trees(
    model: Any,
    x_calib: npt.ArrayLike,
    x_test: npt.ArrayLike | None = None,
    y_test: npt.ArrayLike | None = None,
    input_width: int = 2,
    quantizer: Quantizer | None = None,
    leaf_width: int = 2,
    use_program: bool = True,
) -> TreeConversion:
    """Convert a fitted tree classifier; the report is on ``x_test``/``y_test`` (calibration if absent).

    ``use_program=False`` scores with the vectorised integer arithmetic instead of the reference
    interpreter (same values; faster for large ensembles).
    """
    width = quantizer.width if quantizer is not None else input_width
    if width not in (1, 2):
        raise ProfileError(
            f"tree programs take 1- or 2-byte inputs, not {width}: the box tests subtract thresholds from "
            "features and Clip the difference, which must stay inside int32; use an input width of 2"
        )
    xc = np.asarray(x_calib, dtype=np.float64)
    ens = read_ensemble(model, xc)
    if quantizer is None:
        quantizer = Quantizer.calibrate(xc, input_width)
    it = quantize_trees(ens, quantizer, leaf_width)
    if it.lo.size > MAX_BOX_ELEMENTS:
        raise ProfileError(
            f"the ensemble has {it.n_leaves} reachable leaves x {len(it.features)} features = {it.lo.size} box "
            f"tests (limit {MAX_BOX_ELEMENTS}); use fewer or shallower trees"
        )
    # A large base score (or many leaves) can push the binary margin's Clip operand out of int32: give up
    # leaf precision two bits at a time until the compiler's interval analysis accepts the graph.
    while True:
        onnx_model = to_onnx(it, quantizer)
        try:
            program = compile_onnx(onnx_model, quantizer.width, 1)
            break
        except ProfileError:
            if it.leaf_shift <= -8:
                raise
            it = quantize_trees(ens, quantizer, leaf_width, it.leaf_shift - 2)
    xt = xc if x_test is None else np.asarray(x_test, dtype=np.float64)
    if y_test is None:
        yt = float_predict(model, ens, xt)
        if ens.class_labels is not None:
            yt = np.asarray(ens.class_labels)[yt]
    else:
        yt = np.asarray(y_test)
    rep = report(model, (ens, it, program, quantizer), xt, yt, use_program=use_program)
    return TreeConversion(onnx_model, program, quantizer, ens, it, rep)

