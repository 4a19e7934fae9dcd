"""Tree ensembles in the integer profile: accuracy kept, program size and the gas of a challenge.

Figures (``models.trees.<library>.*``, library one of ``sklearn_gbt``, ``sklearn_rf``, ``xgboost``,
``lightgbm``; one fixed configuration per library, see ``CONFIGS``):

- ``<dataset>.float_accuracy`` / ``.int_accuracy`` / ``.agreement`` / ``.disagreements`` /
  ``.near_threshold`` / ``.near_threshold_off_grid`` / ``.near_margin``: the converter's report on the
  held-out split of ``credit`` (synthetic), ``breast_cancer``, ``wine`` and ``digits``; the integer
  predictions come from the reference interpreter running the compiled program.
- ``program_bytes``, ``macs`` (multiply-accumulates of the MatMuls), ``elementwise`` (elements written by
  the other ops) and ``challenge_gas_worst``: for the credit model, the largest ``eth_estimateGas`` of
  ``IntegerVerifier.executeStored`` (program stored as chunks, as the registry stores it) over extreme and
  real inputs. The kernel skips zero activations only, and this program's cost barely depends on the input.
- ``models.credit_gbt.*``: the same for the shipped model (``oracle/models/credit_gbt.*``).

Run ``python bench/trees_bench.py`` (starts its own anvil) or ``python -m bench.run --only trees``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from web3 import Web3

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.verifier_bench import _Harness  # noqa: E402
from oracle.profile.codec import encode_tensor, width_range
from oracle.profile.datasets import load_split  # noqa: E402
from oracle.profile.models import model_entry, program_bytes  # noqa: E402
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Program, decode, encode
from oracle.profile.reference import run_bytes  # noqa: E402

DATASETS = ("credit", "breast_cancer", "wine", "digits")
#: library -> (estimator factory name, parameters); seeded, single-threaded so results are repeatable.
CONFIGS: dict[str, dict[str, Any]] = {
    "sklearn_gbt": {"n_estimators": 50, "max_depth": 3, "random_state": 0},
    "sklearn_rf": {"n_estimators": 50, "max_depth": 6, "random_state": 0, "n_jobs": 1},
    "xgboost": {"n_estimators": 50, "max_depth": 3, "random_state": 0, "n_jobs": 1},
    "lightgbm": {"n_estimators": 50, "num_leaves": 8, "random_state": 0, "n_jobs": 1, "verbose": -1},
}


def make(library: str) -> Any:
    params = CONFIGS[library]
    if library == "sklearn_gbt":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(**params)
    if library == "sklearn_rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(**params)
    if library == "xgboost":
        import xgboost as xgb

        return xgb.XGBClassifier(**params)
    import lightgbm as lgb

    return lgb.LGBMClassifier(**params)


def program_costs(program: Program) -> tuple[int, int]:
    """(MatMul multiply-accumulates, elements written by every other op)."""
    macs = elementwise = 0
    for op in program.ops:
        out = program.shapes[op.output]
        if op.opcode == Opcode.MATMUL:
            macs += int(np.prod(program.shapes[op.inputs[0]])) * int(out[1])
        else:
            elementwise += int(np.prod(out))
    return macs, elementwise


def worst_gas(h: _Harness, program: Program, real: np.ndarray) -> int:
    """Largest executeStored gas over extreme inputs and a few real ones (checked against the reference)."""
    chunks = h.store(encode(program))
    n = int(np.prod(program.input_shape))
    lo, hi = width_range(program.input_width)
    alt = np.where(np.arange(n) % 2 == 0, hi, lo)
    rng = np.random.default_rng(0)
    candidates = [np.full(n, hi), np.full(n, lo), alt, -alt - 1, np.ones(n, dtype=np.int64)]
    candidates += [rng.choice([lo, hi], size=n) for _ in range(3)] + list(real.reshape(len(real), -1))
    best = 0
    for x in candidates:
        inp = encode_tensor(np.asarray(x).reshape(program.input_shape), program.input_width)
        if h.output(chunks, inp) != run_bytes(program, inp):
            raise AssertionError("verifier output differs from the reference interpreter")
        gas = h.gas(chunks, inp)
        if gas is None:
            raise AssertionError("tree program does not fit the block gas limit")
        best = max(best, gas)
    return best


def run(w3: Web3) -> dict[str, float]:
    from oracle.profile.quantizer import Quantizer
    from oracle.profile.trees import convert_trees

    warnings.filterwarnings("ignore", category=UserWarning)
    h = _Harness(w3)
    results: dict[str, float] = {}
    for library in CONFIGS:
        key = f"models.trees.{library}"
        for dataset in DATASETS:
            split = load_split(dataset)
            model = make(library).fit(split.x_train, split.y_train)
            conv = convert_trees(model, split.x_train, split.x_test, split.y_test)
            rep = conv.report
            for field in ("float_accuracy", "int_accuracy", "agreement", "disagreements", "near_threshold",
                          "near_threshold_off_grid", "near_margin"):
                results[f"{key}.{dataset}.{field}"] = float(getattr(rep, field))
            results[f"{key}.{dataset}.program_bytes"] = float(len(encode(conv.program)))
            if dataset == "credit":
                macs, elementwise = program_costs(conv.program)
                results[f"{key}.program_bytes"] = float(len(encode(conv.program)))
                results[f"{key}.macs"] = float(macs)
                results[f"{key}.elementwise"] = float(elementwise)
                results[f"{key}.leaves"] = float(rep.n_leaves)
                real = conv.quantizer.quantize(split.x_test[:3])
                results[f"{key}.challenge_gas_worst"] = float(worst_gas(h, conv.program, real))
                for field in ("float_accuracy", "int_accuracy", "agreement", "near_threshold"):
                    results[f"{key}.{field}"] = float(getattr(rep, field))

    entry = model_entry("credit_gbt")
    program = decode(program_bytes("credit_gbt"))
    macs, elementwise = program_costs(program)
    quant = Quantizer.from_dict(entry["quantizer"])
    real = quant.quantize(load_split("credit").x_test[:3])
    results.update({
        "models.credit_gbt.float_accuracy": float(entry["float_accuracy"]),
        "models.credit_gbt.int_accuracy": float(entry["int_accuracy"]),
        "models.credit_gbt.agreement": float(entry["agreement"]),
        "models.credit_gbt.program_bytes": float(entry["program_size"]),
        "models.credit_gbt.macs": float(macs),
        "models.credit_gbt.elementwise": float(elementwise),
        "models.credit_gbt.challenge_gas_worst": float(worst_gas(h, program, real)),
    })
    return results


def main() -> None:
    from oracle.chain.devnet import Devnet

    with Devnet() as devnet:
        w3 = Web3(Web3.HTTPProvider(devnet.url, request_kwargs={"timeout": 300}))
        results = run(w3)
    for key, value in results.items():
        print(f"{key:56s} {value:,.4f}")


if __name__ == "__main__":
    main()
