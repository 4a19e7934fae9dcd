"""Readers that turn fitted tree ensembles into one float intermediate form, :class:`TreeEnsemble`.

Supported: scikit-learn ``GradientBoostingClassifier``, ``RandomForestClassifier`` (and
``ExtraTreesClassifier``, ``DecisionTreeClassifier``: same tree arrays), XGBoost ``XGBClassifier`` or a
``Booster`` (``gbtree``, objectives ``binary:logistic``/``binary:logitraw``/``multi:softprob``/
``multi:softmax``), LightGBM ``LGBMClassifier`` or a ``Booster`` (objectives ``binary``,
``multiclass``, ``multiclassova``). The model dumps are read directly: scikit-learn's ``tree_`` arrays,
XGBoost's JSON model (``Booster.save_raw("json")``) and LightGBM's ``Booster.dump_model()``.

Every ensemble becomes ``score = base + sum over trees of the reached leaf's value vector``; the
decision is ``argmax(score)`` (``K`` columns) or ``score > 0`` (one column, binary margin models).
The constant ``base`` (prior / base score / init estimator) is recovered as the library's own raw
score minus the sum of the trees on calibration data and must be the same for every sample, which
also proves the trees were read correctly. Anything else is refused with a :class:`ProfileError`
naming the construct and what to do instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oracle.errors import ProfileError

FloatArray = npt.NDArray[np.float64]
IntArr = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Tree:
    """One binary tree; ``feature[n] < 0`` marks a leaf, whose contribution is ``value[n]`` (``[K]``)."""

    feature: IntArr
    threshold: FloatArray
    left: IntArr
    right: IntArr
    value: FloatArray  # [n_nodes, K]

    def leaves(self, x: FloatArray, left_if_equal: bool) -> IntArr:
        """Index of the leaf each row of ``x`` reaches."""
        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        while True:
            f = self.feature[node]
            active = f >= 0
            if not active.any():
                return node
            xv = x[rows, np.where(active, f, 0)]
            thr = self.threshold[node]
            go_left = xv <= thr if left_if_equal else xv < thr
            nxt = np.where(go_left, self.left[node], self.right[node])
            node = np.where(active, nxt, node)


@dataclass(frozen=True)
class TreeEnsemble:
    """Float trees plus how they are combined (see module doc)."""

    library: str
    trees: tuple[Tree, ...]
    n_features: int
    base: FloatArray  # [K]
    left_if_equal: bool  # x <= t goes left (scikit-learn, LightGBM); False: x < t (XGBoost)
    float32_inputs: bool  # the library casts features to float32 before comparing
    binary_margin: bool  # K == 1: class 1 iff score > 0
    class_labels: tuple[int, ...] | None

    @property
    def n_outputs(self) -> int:
        return int(self.base.shape[0])

    def prepare(self, x: npt.ArrayLike) -> FloatArray:
        arr = np.asarray(x, dtype=np.float64)
        return arr.astype(np.float32).astype(np.float64) if self.float32_inputs else arr

    def scores(self, x: npt.ArrayLike) -> FloatArray:
        """Float64 ``base + sum of reached leaf values`` per sample (``[N, K]``)."""
        xs = self.prepare(x)
        total = np.tile(self.base, (len(xs), 1))
        for t in self.trees:
            total = total + t.value[t.leaves(xs, self.left_if_equal)]
        return total

    def decide(self, scores: FloatArray) -> IntArr:
        if self.binary_margin:
            return (scores[:, 0] > 0).astype(np.int64)
        result: IntArr = np.argmax(scores, axis=1).astype(np.int64)
        return result


def _refuse(what: str, instead: str) -> ProfileError:
    return ProfileError(f"{what} cannot be converted to the integer profile; {instead}")


def _recover_base(raw: FloatArray, trees: list[Tree], ens_args: dict[str, Any], x: FloatArray,
                  rtol: float) -> FloatArray:
    """``raw - sum(trees)`` on calibration rows; refused unless it is one constant vector."""
    probe = TreeEnsemble(base=np.zeros(raw.shape[1]), trees=tuple(trees), **ens_args)
    diff = raw - probe.scores(x)
    base = np.median(diff, axis=0)
    scale = max(1.0, float(np.abs(raw).max()))
    if float(np.abs(diff - base).max()) > rtol * scale:
        raise _refuse(
            f"this {ens_args['library']} model (its raw score is not a constant plus the sum of its trees: "
            "an init estimator, linear leaves or averaged output?)",
            "use a constant prior / base score and plain trees",
        )
    return np.asarray(base, dtype=np.float64)


def _check_width(n_features: int, x: FloatArray) -> None:
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ProfileError(
            f"the model takes {n_features} features but the data has {x.shape[-1]}; calibrate with the data "
            "set the model was trained on"
        )


def _no_nan(x: FloatArray) -> None:
    if not np.all(np.isfinite(x)):
        raise _refuse("missing (NaN) or infinite feature values", "impute missing values before the model")


# --------------------------------------------------------------------------------------------------
# scikit-learn
# --------------------------------------------------------------------------------------------------


def _sk_tree(est: Any, scale: float, column: int | None, k: int, proba: bool) -> Tree:
    t = est.tree_
    if t.n_outputs != 1:
        raise _refuse("multi-output trees", "train one classifier per target")
    feature = np.where(t.children_left < 0, -1, t.feature).astype(np.int64)
    raw = np.asarray(t.value[:, 0, :], dtype=np.float64)
    if proba:  # class distribution per node -> probabilities (what predict_proba averages)
        sums = raw.sum(axis=1, keepdims=True)
        value = raw / np.where(sums > 0, sums, 1.0)
    else:  # regression tree of a boosting stage, contributing to one score column
        value = np.zeros((t.node_count, k))
        value[:, column if column is not None else 0] = raw[:, 0] * scale
    return Tree(feature, np.asarray(t.threshold, dtype=np.float64), t.children_left.astype(np.int64),
                t.children_right.astype(np.int64), value)


def read_sklearn(model: Any, x: FloatArray) -> TreeEnsemble:
    from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    if getattr(model, "n_outputs_", 1) != 1:
        raise _refuse("multi-output trees", "train one classifier per target")
    classes = np.asarray(model.classes_)
    labels = tuple(int(c) for c in classes) if np.issubdtype(classes.dtype, np.integer) else None
    _check_width(int(model.n_features_in_), x)
    common: dict[str, Any] = dict(n_features=int(model.n_features_in_), left_if_equal=True,
                                  float32_inputs=True, class_labels=labels)
    if isinstance(model, GradientBoostingClassifier):
        if getattr(model, "n_trees_per_iteration_", model.estimators_.shape[1]) != model.estimators_.shape[1]:
            raise _refuse("this GradientBoostingClassifier layout", "use a standard fitted model")
        k = model.estimators_.shape[1]
        lr = float(model.learning_rate)
        trees = [_sk_tree(est, lr, col, k, proba=False)
                 for stage in model.estimators_ for col, est in enumerate(stage)]
        raw = np.asarray(model.decision_function(x), dtype=np.float64).reshape(len(x), -1)
        args = dict(common, library="sklearn-gbt", binary_margin=(k == 1))
        base = _recover_base(raw, trees, args, x, 1e-9)
        return TreeEnsemble(trees=tuple(trees), base=base, **args)
    if isinstance(model, (RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier)):
        if getattr(model, "n_outputs_", 1) != 1:
            raise _refuse("multi-output forests", "train one classifier per target")
        ests = [model] if isinstance(model, DecisionTreeClassifier) else list(model.estimators_)
        k = len(model.classes_)
        trees = [_sk_tree(est, 1.0, None, k, proba=True) for est in ests]
        ens = TreeEnsemble(trees=tuple(trees), base=np.zeros(k), library="sklearn-forest", binary_margin=False,
                           **common)
        # Check the read trees against the library (probabilities are the mean of the trees' values).
        if float(np.abs(ens.scores(x) / len(trees) - model.predict_proba(x)).max()) > 1e-6:
            raise _refuse("this forest (its probabilities are not the mean of its trees)", "use plain trees")
        return ens
    raise _refuse(f"scikit-learn estimator {type(model).__name__}",
                  "use GradientBoostingClassifier, RandomForestClassifier, ExtraTreesClassifier or a "
                  "DecisionTreeClassifier; linear models and MLPs go through `oracle model convert` "
                  "(export ONNX with skl2onnx); pipelines: convert the final estimator")


# --------------------------------------------------------------------------------------------------
# XGBoost
# --------------------------------------------------------------------------------------------------

_XGB_OBJECTIVES = ("binary:logistic", "binary:logitraw", "multi:softprob", "multi:softmax")


def read_xgboost(model: Any, x: FloatArray) -> TreeEnsemble:
    import xgboost as xgb

    booster = model.get_booster() if hasattr(model, "get_booster") else model
    if not isinstance(booster, xgb.Booster):
        raise _refuse(f"{type(model).__name__}", "pass an XGBClassifier or an xgboost.Booster")
    doc = json.loads(booster.save_raw(raw_format="json"))["learner"]
    objective = doc["objective"]["name"]
    if objective not in _XGB_OBJECTIVES:
        raise _refuse(f"XGBoost objective {objective!r}", f"train a classifier with one of {_XGB_OBJECTIVES}")
    gb = doc["gradient_booster"]
    if gb["name"] != "gbtree":
        raise _refuse(f"XGBoost booster {gb['name']!r}", "use booster='gbtree'")
    best = doc.get("attributes", {}).get("best_iteration")
    n_iter = len(gb["model"]["iteration_indptr"]) - 1
    if best is not None and int(best) + 1 != n_iter:
        raise _refuse("an early-stopped XGBoost model that still holds trees after its best iteration",
                      "slice it first: booster[: best_iteration + 1]")
    n_class = int(doc["learner_model_param"].get("num_class", "0"))
    k = max(1, n_class)
    trees: list[Tree] = []
    for info, t in zip(gb["model"]["tree_info"], gb["model"]["trees"], strict=True):
        if int(t["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise _refuse("XGBoost vector-leaf (multi_output_tree) models", "use multi_strategy='one_output_per_tree'")
        if any(int(s) != 0 for s in t["split_type"]):
            raise _refuse("XGBoost categorical splits", "one-hot or ordinal-encode categories before training")
        left = np.asarray(t["left_children"], dtype=np.int64)
        cond = np.asarray(t["split_conditions"], dtype=np.float32).astype(np.float64)  # float32 printed short
        value = np.zeros((len(left), k))
        value[:, int(info)] = np.where(left < 0, cond, 0.0)
        trees.append(Tree(np.where(left < 0, -1, np.asarray(t["split_indices"], dtype=np.int64)),
                          cond, left, np.asarray(t["right_children"], dtype=np.int64), value))
    n_features = int(doc["learner_model_param"]["num_feature"])
    _check_width(n_features, x)
    raw = np.asarray(booster.predict(xgb.DMatrix(x), output_margin=True), dtype=np.float64).reshape(len(x), -1)
    labels = None
    if hasattr(model, "classes_"):
        labels = tuple(int(c) for c in model.classes_)
    args: dict[str, Any] = dict(library="xgboost", n_features=n_features, left_if_equal=False, float32_inputs=True,
                binary_margin=(k == 1), class_labels=labels)
    base = _recover_base(raw, trees, args, x, 1e-4)
    return TreeEnsemble(trees=tuple(trees), base=base, **args)


# --------------------------------------------------------------------------------------------------
# LightGBM
# --------------------------------------------------------------------------------------------------


def _lgb_tree(root: dict[str, Any], k: int, column: int) -> Tree:
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []

    def visit(node: dict[str, Any]) -> int:
        idx = len(feature)
        feature.append(-1)
        threshold.append(0.0)
        left.append(-1)
        right.append(-1)
        value.append(0.0)
        if "leaf_value" in node:
            if "leaf_coeff" in node:
                raise _refuse("LightGBM linear trees", "train with linear_tree=False")
            value[idx] = float(node["leaf_value"])
            return idx
        if node.get("decision_type") != "<=":
            raise _refuse(f"LightGBM split type {node.get('decision_type')!r} (categorical)",
                          "encode categories as numbers and train without categorical_feature")
        if node.get("missing_type") == "Zero":
            raise _refuse("LightGBM zero-as-missing splits (zeros take the default branch)",
                          "train with zero_as_missing=False")
        feature[idx] = int(node["split_feature"])
        threshold[idx] = float(node["threshold"])
        left[idx] = visit(node["left_child"])
        right[idx] = visit(node["right_child"])
        return idx

    visit(root)
    vals = np.zeros((len(feature), k))
    vals[:, column] = value
    return Tree(np.asarray(feature, dtype=np.int64), np.asarray(threshold, dtype=np.float64),
                np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64), vals)


def read_lightgbm(model: Any, x: FloatArray) -> TreeEnsemble:
    import lightgbm as lgb

    booster = model.booster_ if hasattr(model, "booster_") else model
    if not isinstance(booster, lgb.Booster):
        raise _refuse(f"{type(model).__name__}", "pass an LGBMClassifier or a lightgbm.Booster")
    dump = booster.dump_model()
    objective = str(dump.get("objective", "")).split(" ")[0]
    if objective not in ("binary", "multiclass", "multiclassova"):
        raise _refuse(f"LightGBM objective {objective!r}", "train a binary or multiclass classifier")
    if dump.get("average_output"):
        raise _refuse("LightGBM random-forest mode (averaged output)", "use boosting='gbdt'")
    best = int(getattr(booster, "best_iteration", 0) or 0)
    per_iter = int(dump["num_tree_per_iteration"])
    if best > 0 and best * per_iter != len(dump["tree_info"]):
        raise _refuse("an early-stopped LightGBM model that still holds trees after its best iteration",
                      "save it with num_iteration=best_iteration and load that")
    _check_width(int(dump["max_feature_idx"]) + 1, x)
    k = per_iter if per_iter > 1 else 1
    trees = [_lgb_tree(info["tree_structure"], k, i % per_iter if k > 1 else 0)
             for i, info in enumerate(dump["tree_info"])]
    raw = np.asarray(booster.predict(x, raw_score=True), dtype=np.float64).reshape(len(x), -1)
    labels = tuple(int(c) for c in model.classes_) if hasattr(model, "classes_") else None
    args: dict[str, Any] = dict(library="lightgbm", n_features=int(dump["max_feature_idx"]) + 1,
                                left_if_equal=True, float32_inputs=False, binary_margin=(k == 1),
                                class_labels=labels)
    base = _recover_base(raw, trees, args, x, 1e-7)
    return TreeEnsemble(trees=tuple(trees), base=base, **args)


def read_ensemble(model: Any, x_calib: npt.ArrayLike) -> TreeEnsemble:
    """Dispatch on the model's library (see module doc); ``x_calib`` checks the reading."""
    x = np.asarray(x_calib, dtype=np.float64)
    _no_nan(x)
    mod = type(model).__module__.split(".")[0]
    if mod == "sklearn":
        return read_sklearn(model, x)
    if mod == "xgboost":
        return read_xgboost(model, x)
    if mod == "lightgbm":
        return read_lightgbm(model, x)
    raise _refuse(f"a {type(model).__module__}.{type(model).__name__}",
                  "convert a scikit-learn, XGBoost or LightGBM tree classifier (other float models: "
                  "export ONNX and use `oracle model convert`)")


def load_tree_model(path: Any) -> Any:
    """A fitted tree model from a file: XGBoost ``.json``/``.ubj``, LightGBM ``.txt``, else a pickle/joblib.

    Unpickling runs code from the file: only load models you trust. Failures are a one-line
    :class:`ProfileError` saying which formats are accepted.
    """
    from pathlib import Path

    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix in (".json", ".ubj"):
            import xgboost as xgb

            return xgb.Booster(model_file=str(p))
        if suffix == ".txt":
            import lightgbm as lgb

            return lgb.Booster(model_file=str(p))
        import joblib

        return joblib.load(p)
    except Exception as exc:  # noqa: BLE001 - each library raises its own error types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProfileError(
            f"cannot load {p.name} as a tree model ({first}); give a pickle/joblib of a fitted classifier, an "
            "XGBoost .json/.ubj saved model or a LightGBM .txt model file"
        ) from None
