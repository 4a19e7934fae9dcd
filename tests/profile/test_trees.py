"""Tree-ensemble converter: onnxruntime == reference == an independent integer traversal, float/int
decision agreement with every disagreement explained, library tie conventions, refusals."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from profile_helpers import ort_session
from trees_helpers import LIBRARIES, converted, extremes, make_model, traverse_int

from oracle.errors import ProfileError
from oracle.profile.codec import width_range
from oracle.profile.datasets import load_split
from oracle.profile.quantizer import Quantizer
from oracle.profile.reference import run
from oracle.profile.trees import convert_trees, int_threshold, threshold_grid

warnings.filterwarnings("ignore", category=UserWarning)

CASES = [(lib, ds) for lib in LIBRARIES for ds in ("credit", "wine", "breast_cancer")]


@pytest.mark.parametrize(("library", "dataset"), CASES)
def test_decisions_agree_with_float_model_except_near_thresholds(library: str, dataset: str) -> None:
    conv, _ = converted(library, dataset)
    rep = conv.report
    assert rep.n_samples == len(load_split(dataset).y_test)
    assert rep.unexplained == 0, rep
    assert rep.disagreements <= rep.near_threshold_off_grid + rep.near_margin
    assert rep.agreement == pytest.approx(1 - rep.disagreements / rep.n_samples)
    assert rep.agreement >= 0.98 and rep.int_accuracy >= rep.float_accuracy - 0.01


@pytest.mark.parametrize(("library", "dataset"), CASES)
def test_ort_reference_and_node_traversal_agree_on_held_out_and_extreme_inputs(library: str, dataset: str) -> None:
    conv, _ = converted(library, dataset)
    quant = conv.quantizer
    split = load_split(dataset)
    rows = list(quant.quantize(split.x_test[:20])) + extremes(quant.n_features, quant.width)
    q = np.array(rows, dtype=np.int64)
    session = ort_session(conv.model)
    ours = np.array([int(run(conv.program, r.reshape(quant.shape))[0]) for r in q])
    theirs = np.array([int(session.run(None, {"input": r.reshape(quant.shape)})[0][0]) for r in q])
    assert np.array_equal(ours, theirs)
    assert np.array_equal(ours, conv.int_trees.predict_index(q))
    assert np.array_equal(ours, traverse_int(conv, q))


@pytest.mark.parametrize("library", LIBRARIES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_int16_inputs_bit_exact(library: str, data: st.DataObject) -> None:
    conv, _ = converted(library, "wine" if library in ("xgboost", "sklearn-rf") else "credit")
    quant = conv.quantizer
    lo, hi = width_range(quant.width)
    x = data.draw(arrays(np.int64, quant.shape, elements=st.integers(lo, hi)))
    ours = run(conv.program, x)
    assert np.array_equal(ort_session(conv.model).run(None, {"input": x})[0], ours)
    assert int(ours[0]) == int(traverse_int(conv, x.reshape(1, -1))[0])


# --------------------------------------------------------------------------------------------------
# Tie conventions: inputs exactly on the grid, thresholds exactly on data values
# --------------------------------------------------------------------------------------------------


def _integer_data(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 8, size=(600, 4)).astype(np.float64)
    y = ((x[:, 0] >= 3) & (x[:, 1] < 5) | (x[:, 2] == 4)).astype(np.int64)
    flip = rng.random(600) < 0.05
    return x, np.where(flip, 1 - y, y)


@pytest.mark.parametrize("library", LIBRARIES)
def test_grid_inputs_take_exactly_the_float_branches(library: str) -> None:
    """Integer features, thresholds on (XGBoost) or next to (scikit-learn, LightGBM) data values, and an
    exact quantizer (offset 0, scale 4): no rounding anywhere, so every decision must be the library's
    unless the float score margin is within the leaf rounding bound. A wrong <= / < rule fails here."""
    x, y = _integer_data()
    model = make_model(library, n=15, depth=3).fit(x, y)
    quant = Quantizer((0.0,) * 4, (4.0,) * 4, 1, (1, 4))
    grid = np.array(np.meshgrid(*[np.arange(8)] * 4)).reshape(4, -1).T.astype(np.float64)
    conv = convert_trees(model, x, grid, None, quantizer=quant)
    rep = conv.report
    assert rep.near_threshold_off_grid == 0
    assert rep.disagreements <= rep.near_margin and rep.unexplained == 0
    assert rep.agreement >= 0.99
    session = ort_session(conv.model)
    q = quant.quantize(grid[:64])
    for row in q:
        assert session.run(None, {"input": row.reshape(1, 4)})[0][0] == run(conv.program, row.reshape(1, 4))[0]


def test_threshold_mapping_follows_each_library_rule() -> None:
    from oracle.profile.trees_read import TreeEnsemble

    def ens(left_if_equal: bool) -> TreeEnsemble:
        return TreeEnsemble("t", (), 1, np.zeros(1), left_if_equal, False, True, None)

    quant = Quantizer((0.0,), (1.0,), 2, (1, 1))
    # x <= 3 goes left: right iff q > 3.  x < 3 goes left: right iff q >= 3, i.e. q > 2.
    assert int_threshold(ens(True), threshold_grid(ens(True), quant, 0, 3.0)) == 3
    assert int_threshold(ens(False), threshold_grid(ens(False), quant, 0, 3.0)) == 2
    # Between grid points both rules agree: right iff q >= 4.
    assert int_threshold(ens(True), 3.5) == int_threshold(ens(False), 3.5) == 3
    assert math.floor(-0.5) == int_threshold(ens(True), -0.5) == -1


# --------------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------------


def _xy() -> tuple[np.ndarray, np.ndarray]:
    split = load_split("breast_cancer")
    return split.x_train[:200, :6], split.y_train[:200]


def test_refuses_inputs_wider_than_int16() -> None:
    x, y = _xy()
    model = make_model("sklearn-gbt", n=3).fit(x, y)
    with pytest.raises(ProfileError, match="1- or 2-byte inputs, not 4"):
        convert_trees(model, x, input_width=4)
    assert convert_trees(model, x, input_width=1).report.agreement > 0.9


def test_refuses_missing_values() -> None:
    x, y = _xy()
    model = make_model("sklearn-gbt", n=3).fit(x, y)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ProfileError, match="missing"):
        convert_trees(model, bad)


def test_refuses_non_tree_estimators_and_regressors() -> None:
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.linear_model import LogisticRegression

    x, y = _xy()
    with pytest.raises(ProfileError, match="LogisticRegression.*oracle model convert"):
        convert_trees(LogisticRegression(max_iter=200).fit(x, y), x)
    with pytest.raises(ProfileError, match="objective 'reg:squarederror'"):
        convert_trees(xgb.XGBRegressor(n_estimators=2, n_jobs=1).fit(x, y), x)
    with pytest.raises(ProfileError, match="booster 'gblinear'"):
        convert_trees(xgb.XGBClassifier(n_estimators=2, booster="gblinear", n_jobs=1).fit(x, y), x)
    with pytest.raises(ProfileError, match="objective 'regression'"):
        convert_trees(lgb.LGBMRegressor(n_estimators=2, verbose=-1, n_jobs=1).fit(x, y), x)


def test_refuses_categorical_and_linear_lightgbm_trees() -> None:
    import lightgbm as lgb

    x, y = _integer_data()
    cat = lgb.LGBMClassifier(n_estimators=3, verbose=-1, n_jobs=1, min_child_samples=5)
    cat.fit(x, y, categorical_feature=[2])
    with pytest.raises(ProfileError, match="categorical"):
        convert_trees(cat, x)
    lin = lgb.LGBMClassifier(n_estimators=3, verbose=-1, n_jobs=1, linear_tree=True).fit(x, y)
    with pytest.raises(ProfileError, match="linear trees"):
        convert_trees(lin, x)


def test_refuses_gradient_boosting_with_an_init_estimator() -> None:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = _xy()
    model = GradientBoostingClassifier(n_estimators=3, init=LogisticRegression(max_iter=500)).fit(x, y)
    with pytest.raises(ProfileError, match="init estimator"):
        convert_trees(model, x)


def test_refuses_multi_output_forests() -> None:
    from sklearn.ensemble import RandomForestClassifier

    x, y = _xy()
    model = RandomForestClassifier(n_estimators=2, random_state=0).fit(x, np.column_stack([y, 1 - y]))
    with pytest.raises(ProfileError, match="multi-output"):
        convert_trees(model, x)


def test_refuses_xgboost_early_stopped_with_extra_trees() -> None:
    import xgboost as xgb

    x, y = _xy()
    early = xgb.XGBClassifier(n_estimators=60, max_depth=4, learning_rate=0.8, early_stopping_rounds=2, n_jobs=1)
    early.fit(x[:120], y[:120], eval_set=[(x[120:], y[120:])], verbose=False)
    assert early.best_iteration + 1 < 60
    with pytest.raises(ProfileError, match="best_iteration"):
        convert_trees(early, x)


def test_refuses_xgboost_categorical_splits() -> None:
    import xgboost as xgb

    pd = pytest.importorskip("pandas")  # installed with the dev extra (eth-ape needs it)
    xi, yi = _integer_data()
    frame = pd.DataFrame(xi.astype(np.int64), columns=list("abcd")).astype({"c": "category"})
    cat = xgb.XGBClassifier(n_estimators=3, enable_categorical=True, tree_method="hist", n_jobs=1).fit(frame, yi)
    with pytest.raises(ProfileError, match="categorical"):
        convert_trees(cat, xi)


def test_refuses_lightgbm_zero_as_missing() -> None:
    import lightgbm as lgb

    x, y = _integer_data()
    model = lgb.LGBMClassifier(n_estimators=3, zero_as_missing=True, verbose=-1, n_jobs=1, min_child_samples=5)
    with pytest.raises(ProfileError, match="zero-as-missing"):
        convert_trees(model.fit(x, y), x)


def test_large_base_score_gives_up_leaf_precision_instead_of_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A prior of +-3000 logits at the default leaf scale would put the margin's Clip operand out of int32."""
    from oracle.profile import trees as trees_mod
    from oracle.profile.trees import quantize_trees
    from oracle.profile.trees_read import Tree, TreeEnsemble

    stump = Tree(np.array([0, -1, -1]), np.array([0.5, 0, 0]), np.array([1, -1, -1]), np.array([2, -1, -1]),
                 np.array([[0.0], [-0.01], [0.01]]))
    quant = Quantizer((0.0,), (64.0,), 2, (1, 1))
    for base in (3000.0, -3000.0):
        ens = TreeEnsemble("t", (stump,), 1, np.array([base]), True, False, True, None)
        default = quantize_trees(ens, quant)
        assert abs(int(default.base[0])) >= 2**31  # what the compiler refuses under a Clip
        monkeypatch.setattr(trees_mod, "read_ensemble", lambda model, x, e=ens: e)
        conv = convert_trees(object(), np.array([[0.0], [1.0]]), quantizer=quant)
        assert conv.int_trees.leaf_shift < default.leaf_shift
        for q in (-32768, 0, 32, 33, 32767):
            assert int(run(conv.program, np.array([[q]]))[0]) == int(base > 0)
