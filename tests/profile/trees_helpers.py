"""Small tree ensembles per library, converted once per session, and an independent integer traversal."""

from __future__ import annotations

from typing import Any

import numpy as np

from oracle.profile.codec import width_range
from oracle.profile.datasets import load_split
from oracle.profile.trees import TreeConversion, convert_trees, int_threshold, threshold_grid

LIBRARIES = ("sklearn-gbt", "sklearn-rf", "xgboost", "lightgbm")


def make_model(library: str, n: int = 12, depth: int = 3, seed: int = 0) -> Any:
    if library == "sklearn-gbt":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(n_estimators=n, max_depth=depth, random_state=seed)
    if library == "sklearn-rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=n, max_depth=depth + 2, random_state=seed, n_jobs=1)
    if library == "xgboost":
        import xgboost as xgb

        return xgb.XGBClassifier(n_estimators=n, max_depth=depth, random_state=seed, n_jobs=1)
    import lightgbm as lgb

    return lgb.LGBMClassifier(n_estimators=n, num_leaves=2**depth, random_state=seed, n_jobs=1, verbose=-1,
                              min_child_samples=5)


_CACHE: dict[tuple[str, str], tuple[TreeConversion, Any]] = {}


def converted(library: str, dataset: str) -> tuple[TreeConversion, Any]:
    """One small model per (library, dataset), converted once per test session."""
    key = (library, dataset)
    if key not in _CACHE:
        split = load_split(dataset)
        model = make_model(library).fit(split.x_train, split.y_train)
        _CACHE[key] = (convert_trees(model, split.x_train, split.x_test, split.y_test), model)
    return _CACHE[key]


def traverse_int(conv: TreeConversion, q: np.ndarray) -> np.ndarray:
    """Integer decision by walking every tree node by node (right iff q > T): independent of the boxes."""
    ens, it, quant = conv.ensemble, conv.int_trees, conv.quantizer
    wmax = width_range(2)[1]
    total = np.tile(it.base, (len(q), 1)).astype(np.int64)
    for tree in ens.trees:
        for i, row in enumerate(q):
            node = 0
            while tree.feature[node] >= 0:
                f = int(tree.feature[node])
                t_int = int_threshold(ens, threshold_grid(ens, quant, f, float(tree.threshold[node])))
                node = int(tree.right[node] if row[f] > t_int else tree.left[node])
            total[i] += np.clip(np.rint(tree.value[node] * 2.0**it.leaf_shift), -wmax, wmax).astype(np.int64)
    if ens.binary_margin:
        return (total[:, 0] > 0).astype(np.int64)
    return np.argmax(total, axis=1)


def extremes(n_features: int, width: int) -> list[np.ndarray]:
    lo, hi = width_range(width)
    alt = np.where(np.arange(n_features) % 2 == 0, hi, lo)
    return [np.full(n_features, v) for v in (lo, hi, 0, -1, 1)] + [alt, -alt - 1]


