"""``oracle model convert-trees``: converts saved tree models of each library, refuses others in one line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import joblib
import onnx
import pytest
from typer.testing import CliRunner

from oracle.cli import app
from oracle.profile.compiler import commitment_of_file
from oracle.profile.datasets import load_split

warnings.filterwarnings("ignore", category=UserWarning)


def oracle_cli(*args: str) -> SimpleNamespace:
    """Runs the CLI in-process (a subprocess pays ~8 s of imports per call)."""
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    d = tmp_path_factory.mktemp("trees")
    s = load_split("wine")
    paths = {k: d / name for k, name in (("gbt", "gbt.joblib"), ("xgb", "xgb.json"), ("lgb", "lgb.txt"),
                                          ("lr", "lr.joblib"), ("junk", "junk.json"))}
    joblib.dump(GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0).fit(s.x_train, s.y_train),
                paths["gbt"])
    xgb.XGBClassifier(n_estimators=4, max_depth=2, n_jobs=1).fit(s.x_train, s.y_train).save_model(paths["xgb"])
    lgb.LGBMClassifier(n_estimators=4, num_leaves=4, verbose=-1, n_jobs=1).fit(
        s.x_train, s.y_train).booster_.save_model(paths["lgb"])
    joblib.dump(LogisticRegression(max_iter=5000).fit(s.x_train, s.y_train), paths["lr"])
    paths["junk"].write_text("{not json")
    return paths


@pytest.mark.parametrize("kind", ["gbt", "xgb", "lgb"])
def test_converts_and_prints_the_accuracy_report(saved: dict[str, Path], kind: str, tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    res = oracle_cli("model", "convert-trees", str(saved[kind]), "--dataset", "wine", "-o", str(out))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    rep = doc["report"]
    assert rep["n_samples"] == len(load_split("wine").y_test) and rep["unexplained"] == 0
    assert rep["agreement"] >= 0.97 and 0.8 <= rep["float_accuracy"] <= 1.0
    onnx.checker.check_model(onnx.load(str(out)))
    program, digest = commitment_of_file(out, 2, 1)
    assert digest == doc["commitment"] and len(program) == doc["program_size"]


@pytest.mark.parametrize(("kind", "dataset", "message"), [
    ("lr", "wine", "LogisticRegression cannot be converted"),
    ("junk", "wine", "cannot load junk.json as a tree model"),
    ("xgb", "credit", "the model takes 13 features but the data has 6"),
])
def test_refuses_in_one_line_without_traceback(saved: dict[str, Path], kind: str, dataset: str, message: str,
                                               tmp_path: Path) -> None:
    res = oracle_cli("model", "convert-trees", str(saved[kind]), "--dataset", dataset, "-o", str(tmp_path / "x"))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "x").exists()
