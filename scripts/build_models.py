"""Train, convert and write the shipped models in ``oracle/models/`` (deterministic).

Usage: ``.venv/bin/python scripts/build_models.py [--out DIR] [--check]``

* ``digits.onnx`` (EXACT): a 64-32-10 ReLU MLP on the 8x8 handwritten digits, converted from the
  PyTorch-style float graph ``digits_float.onnx`` (ATTESTED, the same network in float32). Input: the
  64 pixel intensities 0..16 as int8; output: the predicted digit.
* ``breast_cancer.onnx`` (EXACT): standardised logistic regression exported by skl2onnx, converted
  with a calibrated int16 input quantizer.
* ``digits_cnn.onnx`` (EXACT): the small CNN trained by ``scripts/train_digits_cnn.py`` (its float graph
  ``digits_cnn_float.onnx`` is shipped and only copied here, not retrained), converted by
  ``oracle.profile.cnn``: convolutions and max-pools lowered to int8 MatMuls and Max. Input: the 64 pixel
  intensities 0..16 as int8 (row-major 8x8); output: the predicted digit.
* ``digits_transformer.onnx`` (EXACT): the small encoder classifier trained by
  ``scripts/train_digits_transformer.py`` on the digits read as 64 pixel tokens (its float graph
  ``digits_transformer_float.onnx`` is shipped and only copied here), lowered to integer-only ops by
  ``oracle.profile.transformer`` (Gather embedding, Newton square root, exp table). Input: the 64 pixel
  intensities 0..16 as int8; output: the predicted digit.
* ``credit_gbt.onnx`` (EXACT): gradient-boosted trees on the synthetic credit data, converted by
  ``oracle.profile.trees`` (leaf boxes on the int16 input grid, int16 leaf values).
* ``manifest.json``: hashes, commitments, I/O specs, quantizers, accuracies and conformance samples.

Everything is seeded; ``--check`` builds twice into temporary directories and fails unless the bytes
are identical, then compares with what is in ``--out``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from eth_utils.crypto import keccak

from oracle.profile.codec import encode_tensor
from oracle.profile.compiler import compile_onnx
from oracle.profile.converter import Conversion, convert_onnx, convert_sklearn
from oracle.profile.datasets import CREDIT_FEATURES, SPLIT_SEED, TEST_SIZE, Split, load_split
from oracle.profile.float_graphs import torch_style_mlp
from oracle.profile.program import commitment, encode
from oracle.profile.quantizer import Quantizer
from oracle.profile.reference import run

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "oracle" / "models"
N_SAMPLES = 8
SEED = 0


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _save(model: onnx.ModelProto, path: Path) -> bytes:
    data: bytes = model.SerializeToString(deterministic=True)
    path.write_bytes(data)
    return data


def _dataset_info(split: Split) -> dict[str, Any]:
    return {
        "name": split.name,
        "source": ("synthetic: oracle.profile.datasets.synthetic_credit" if split.name == "credit"
                   else "sklearn.datasets (bundled)"),
        "test_size": TEST_SIZE,
        "split_seed": SPLIT_SEED,
        "n_train": len(split.y_train),
        "n_test": len(split.y_test),
    }


def _exact_entry(name: str, conv: Conversion, split: Split, out: Path) -> dict[str, Any]:
    model, quantizer, report = conv
    onnx_bytes = _save(model, out / f"{name}.onnx")
    output_width = 1
    program = compile_onnx(onnx_bytes, quantizer.width, output_width)
    program_bytes = encode(program)
    (out / f"{name}.program").write_bytes(program_bytes)
    q = quantizer.quantize(split.x_test)
    samples = []
    for i in range(N_SAMPLES):
        x = q[i].reshape(quantizer.shape)
        y = run(program, x)
        samples.append(
            {
                "input_hex": _hex(encode_tensor(x, quantizer.width)),
                "expected_output_hex": _hex(encode_tensor(y, output_width)),
                "expected_output": [int(v) for v in y.reshape(-1)],
                "label": int(split.y_test[i]),
            }
        )
    return {
        "file": f"{name}.onnx",
        "mode": "EXACT",
        "onnx_keccak256": _hex(bytes(keccak(onnx_bytes))),
        "program_file": f"{name}.program",
        "program_commitment": _hex(commitment(program_bytes)),
        "program_size": len(program_bytes),
        "input_shape": list(program.input_shape),
        "input_dtype": "int64",
        "input_width": program.input_width,
        "output_shape": list(program.output_shape),
        "output_dtype": "int64",
        "output_width": program.output_width,
        "quantizer": quantizer.to_dict(),
        "class_labels": list(report.class_labels) if report.class_labels else None,
        "weight_width": report.weight_width,
        "constant_widths": sorted({c.width for c in program.constants}),
        "float_accuracy": report.float_accuracy,
        "int_accuracy": report.int_accuracy,
        "agreement": report.agreement,
        "dataset": _dataset_info(split),
        "samples": samples,
    }


def build_digits(out: Path) -> dict[str, Any]:
    """Digits MLP: float graph in PyTorch's export layout, then its integer conversion."""
    from sklearn.neural_network import MLPClassifier

    split = load_split("digits")
    mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, random_state=SEED)
    mlp.fit(split.x_train, split.y_train)
    float_model = torch_style_mlp(mlp.coefs_, mlp.intercepts_, "Softmax", dynamic_batch=False)
    float_bytes = _save(float_model, out / "digits_float.onnx")
    conv = convert_onnx(
        float_model,
        split.x_train,
        split.y_train,
        split.x_test,
        split.y_test,
        quantizer=Quantizer.identity(64, width=1),
    )
    exact = _exact_entry("digits", conv, split, out)
    exact["float_source"] = "digits_float.onnx"
    attested = {
        "file": "digits_float.onnx",
        "mode": "ATTESTED",
        "onnx_keccak256": _hex(bytes(keccak(float_bytes))),
        "input_shape": [1, 64],
        "input_dtype": "float32",
        "input_width": 4,
        "output_shape": [1, 10],
        "output_dtype": "float32",
        "output_width": 4,
        "output_meaning": "class probabilities (softmax) for digits 0..9",
        "float_accuracy": conv.report.float_accuracy,
        "dataset": _dataset_info(split),
        "samples": [
            {
                "input": [float(v) for v in split.x_test[i]],
                "expected_class": int(np.argmax(mlp.predict_proba(split.x_test[i : i + 1])[0])),
                "label": int(split.y_test[i]),
            }
            for i in range(N_SAMPLES)
        ],
    }
    return {"digits": exact, "digits_float": attested}


def build_breast_cancer(out: Path) -> dict[str, Any]:
    """Standardised logistic regression exported by skl2onnx (Scaler + LinearClassifier + ZipMap)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    split = load_split("breast_cancer")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=SEED))
    clf.fit(split.x_train, split.y_train)
    _, conv = convert_sklearn(clf, split.x_train, split.y_train, split.x_test, split.y_test, input_width=2)
    return {"breast_cancer": _exact_entry("breast_cancer", conv, split, out)}


def build_credit_risk(out: Path) -> dict[str, Any]:
    """Standardised logistic regression on the SYNTHETIC credit data set (the lender example's model)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    split = load_split("credit")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=SEED))
    clf.fit(split.x_train, split.y_train)
    _, conv = convert_sklearn(clf, split.x_train, split.y_train, split.x_test, split.y_test, input_width=2)
    entry = _exact_entry("credit_risk", conv, split, out)
    entry["features"] = list(CREDIT_FEATURES)
    entry["output_meaning"] = "1 = likely to default (decline), 0 = approve"
    return {"credit_risk": entry}


def build_digits_cnn(out: Path) -> dict[str, Any]:
    """Digits CNN: the shipped float graph (from scripts/train_digits_cnn.py) and its integer conversion."""
    from oracle.profile.cnn import convert_cnn, program_macs
    from oracle.profile.cnn_lowering import extract_cnn
    from oracle.profile.program import decode

    split = load_split("digits")
    float_bytes = (DEFAULT_OUT / "digits_cnn_float.onnx").read_bytes()
    if out.resolve() != DEFAULT_OUT.resolve():
        (out / "digits_cnn_float.onnx").write_bytes(float_bytes)
    float_model = onnx.load_model_from_string(float_bytes)
    conv = convert_cnn(float_model, split.x_train, split.y_train, split.x_test, split.y_test,
                       quantizer=Quantizer.identity(64, width=1))
    exact = _exact_entry("digits_cnn", conv, split, out)
    exact["float_source"] = "digits_cnn_float.onnx"
    exact["macs"] = program_macs(decode((out / "digits_cnn.program").read_bytes()))
    exact["architecture"] = ("Conv3x3(1->8,pad1)-BN-Relu-MaxPool2 -> Conv3x3(8->16,pad1)-BN-Relu-MaxPool2 "
                             "-> Flatten -> Gemm(64->10); scripts/train_digits_cnn.py")
    net = extract_cnn(float_model)
    attested = {
        "file": "digits_cnn_float.onnx",
        "mode": "ATTESTED",
        "onnx_keccak256": _hex(bytes(keccak(float_bytes))),
        "input_shape": [1, 1, 8, 8],
        "input_dtype": "float32",
        "input_width": 4,
        "output_shape": [1, 10],
        "output_dtype": "float32",
        "output_width": 4,
        "output_meaning": "class probabilities (softmax) for digits 0..9",
        "float_accuracy": conv.report.float_accuracy,
        "dataset": _dataset_info(split),
        "samples": [
            {
                "input": [float(v) for v in split.x_test[i]],
                "expected_class": int(net.predict_index(split.x_test[i : i + 1])[0]),
                "label": int(split.y_test[i]),
            }
            for i in range(N_SAMPLES)
        ],
    }
    return {"digits_cnn": exact, "digits_cnn_float": attested}


def build_digits_transformer(out: Path) -> dict[str, Any]:
    """Digits transformer: the shipped float graph (scripts/train_digits_transformer.py), lowered to integers."""
    from oracle.profile.program import decode, macs
    from oracle.profile.transformer import convert_transformer
    from oracle.profile.transformer_float import forward, read_onnx

    split = load_split("digits")
    float_bytes = (DEFAULT_OUT / "digits_transformer_float.onnx").read_bytes()
    if out.resolve() != DEFAULT_OUT.resolve():
        (out / "digits_transformer_float.onnx").write_bytes(float_bytes)
    conv = convert_transformer(float_bytes, split.x_train, split.y_train, split.x_test, split.y_test)
    exact = _exact_entry("digits_transformer", conv, split, out)
    p, shape, eps = read_onnx(float_bytes)
    exact["float_source"] = "digits_transformer_float.onnx"
    exact["macs"] = macs(decode((out / "digits_transformer.program").read_bytes()))
    exact["family"] = "transformer"
    exact["architecture"] = (
        f"{shape.side}x{shape.side} pixels -> {shape.seq} patch tokens ({shape.patch}x{shape.patch}; embedding = "
        f"sum of {shape.per_patch} Gathers by pixel value + learned positions, dim {shape.dim}) -> {shape.layers} x "
        f"pre-LN encoder layer ({shape.heads} heads, Relu FFN {shape.ffn}) -> LN -> flatten -> "
        f"Gemm({shape.seq * shape.dim}->{shape.classes}); scripts/train_digits_transformer.py")
    attested = {
        "file": "digits_transformer_float.onnx",
        "mode": "ATTESTED",
        "onnx_keccak256": _hex(bytes(keccak(float_bytes))),
        "input_shape": [1, 64],
        "input_dtype": "int64",
        "input_width": 8,
        "output_shape": [1, 10],
        "output_dtype": "float32",
        "output_width": 4,
        "output_meaning": "class logits for digits 0..9",
        "float_accuracy": conv.report.float_accuracy,
        "dataset": _dataset_info(split),
        "samples": [
            {
                "input": [float(v) for v in split.x_test[i]],
                "expected_class": int(np.argmax(forward(p, split.x_test[i : i + 1].astype(np.int64), shape,
                                                        np, eps)[0])),
                "label": int(split.y_test[i]),
            }
            for i in range(N_SAMPLES)
        ],
    }
    return {"digits_transformer": exact, "digits_transformer_float": attested}


#: The shipped gradient-boosted credit model: 100 depth-2 trees (400 leaves) keep the fraud proof in one
#: transaction (about 2.3M gas) with the cross-validated accuracy of larger ensembles.
CREDIT_GBT_PARAMS: dict[str, Any] = {"n_estimators": 100, "max_depth": 2, "learning_rate": 0.1}


def build_credit_gbt(out: Path) -> dict[str, Any]:
    """Gradient-boosted trees (scikit-learn) on the SYNTHETIC credit data set, in the integer box form."""
    from types import SimpleNamespace

    from sklearn.ensemble import GradientBoostingClassifier

    from oracle.profile.trees import convert_trees

    split = load_split("credit")
    clf = GradientBoostingClassifier(random_state=SEED, **CREDIT_GBT_PARAMS)
    clf.fit(split.x_train, split.y_train)
    conv = convert_trees(clf, split.x_train, split.x_test, split.y_test, input_width=2, leaf_width=2)
    rep = conv.report
    shim = SimpleNamespace(
        float_accuracy=rep.float_accuracy, int_accuracy=rep.int_accuracy, agreement=rep.agreement,
        class_labels=rep.class_labels, weight_width=2,
    )
    entry = _exact_entry("credit_gbt", Conversion(conv.model, conv.quantizer, shim), split, out)  # type: ignore[arg-type]
    entry["features"] = list(CREDIT_FEATURES)
    entry["output_meaning"] = "1 = likely to default (decline), 0 = approve"
    entry["family"] = "tree-ensemble"
    entry["float_model"] = {"library": "scikit-learn", "estimator": "GradientBoostingClassifier",
                            "params": dict(CREDIT_GBT_PARAMS, random_state=SEED)}
    entry["trees"] = rep.to_dict()
    return {"credit_gbt": entry}


def build(out: Path) -> dict[str, Any]:
    """Write every shipped model and the manifest into ``out``; returns the manifest."""
    warnings.filterwarnings("ignore", category=Warning, module="sklearn")
    out.mkdir(parents=True, exist_ok=True)
    models: dict[str, Any] = {}
    models.update(build_digits(out))
    models.update(build_breast_cancer(out))
    models.update(build_credit_risk(out))
    models.update(build_digits_cnn(out))
    models.update(build_credit_gbt(out))
    models.update(build_digits_transformer(out))
    manifest = {
        "format": "integer-profile v1 (docs/integer-profile.md)",
        "generator": "scripts/build_models.py",
        "models": models,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _same_dirs(a: Path, b: Path) -> list[str]:
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return ["file lists differ"]
    return [n for n in names if not filecmp.cmp(a / n, b / n, shallow=False)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="build twice and compare, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as t1, tempfile.TemporaryDirectory() as t2:
            build(Path(t1))
            build(Path(t2))
            diff = _same_dirs(Path(t1), Path(t2))
            if diff:
                print(f"NOT deterministic: {diff}", file=sys.stderr)
                return 1
            stale = _same_dirs(Path(t1), args.out) if args.out.exists() else ["missing"]
            if stale:
                print(f"deterministic, but {args.out} differs from a fresh build: {stale}", file=sys.stderr)
                return 1
        print("deterministic; shipped models are up to date")
        return 0
    manifest = build(args.out)
    for name, entry in manifest["models"].items():
        acc = f"float {entry['float_accuracy']:.4f}"
        if entry["mode"] == "EXACT":
            acc += f", int {entry['int_accuracy']:.4f}, program {entry['program_size']} bytes"
        print(f"{name:15s} {entry['mode']:8s} {acc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
