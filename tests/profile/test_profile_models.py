"""The shipped models: hashes and commitments recomputable, ORT == reference, accuracy as promised."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from eth_utils.crypto import keccak
from profile_helpers import ort_session

from oracle.errors import ModelError
from oracle.profile.compiler import commitment_of_file
from oracle.profile.datasets import load_split
from oracle.profile.models import load_manifest, model_bytes, model_path, program_bytes
from oracle.profile.program import decode, encode
from oracle.profile.quantizer import Quantizer
from oracle.profile.reference import run, run_bytes

MANIFEST = load_manifest()["models"]
EXACT = sorted(name for name, e in MANIFEST.items() if e["mode"] == "EXACT")


def test_manifest_lists_the_required_models() -> None:
    assert {"digits", "breast_cancer"} <= set(EXACT)
    assert MANIFEST["digits_float"]["mode"] == "ATTESTED"
    digits = MANIFEST["digits"]
    assert digits["input_shape"] == [1, 64] and digits["input_width"] == 1
    assert digits["output_shape"] == [1] and digits["output_width"] == 1
    assert Quantizer.from_dict(digits["quantizer"]) == Quantizer.identity(64, width=1)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_onnx_hash_matches_file(name: str) -> None:
    assert "0x" + bytes(keccak(model_bytes(name))).hex() == MANIFEST[name]["onnx_keccak256"]


@pytest.mark.parametrize("name", EXACT)
def test_commitment_recomputes_from_onnx_file(name: str) -> None:
    entry = MANIFEST[name]
    data, digest = commitment_of_file(model_path(name), entry["input_width"], entry["output_width"])
    assert digest == entry["program_commitment"]
    assert data == program_bytes(name)
    assert len(data) == entry["program_size"]
    program = decode(data)
    assert encode(program) == data
    assert list(program.input_shape) == entry["input_shape"]
    assert sorted({c.width for c in program.constants}) == entry["constant_widths"]


@pytest.mark.parametrize("name", EXACT)
def test_conformance_samples(name: str) -> None:
    entry = MANIFEST[name]
    program = decode(program_bytes(name))
    session = ort_session(_onnx_model(name))
    for sample in entry["samples"]:
        data = bytes.fromhex(sample["input_hex"][2:])
        assert run_bytes(program, data) == bytes.fromhex(sample["expected_output_hex"][2:])
        x = (
            np.frombuffer(data, dtype=f">i{entry['input_width']}")
            .astype(np.int64)
            .reshape(entry["input_shape"])
        )
        assert session.run(None, {"input": x})[0].tolist() == sample["expected_output"]


def _onnx_model(name: str) -> Any:
    import onnx

    return onnx.load_model_from_string(model_bytes(name))


@pytest.mark.parametrize("name", EXACT)
def test_ort_equals_reference_on_whole_held_out_set_and_accuracy_holds(name: str) -> None:
    entry = MANIFEST[name]
    program = decode(program_bytes(name))
    session = ort_session(_onnx_model(name))
    quantizer = Quantizer.from_dict(entry["quantizer"])
    split = load_split(entry["dataset"]["name"])
    q = quantizer.quantize(split.x_test)
    predictions = []
    for row in q:
        x = row.reshape(quantizer.shape)
        ours = run(program, x)
        assert np.array_equal(session.run(None, {"input": x})[0], ours)
        predictions.append(int(ours[0]))
    labels = entry["class_labels"] or list(range(max(predictions) + 1))
    accuracy = float(np.mean(np.array([labels[p] for p in predictions]) == split.y_test))
    assert accuracy == pytest.approx(entry["int_accuracy"])
    assert accuracy >= entry["float_accuracy"] - 0.01


def test_float_digits_model_accuracy_matches_manifest() -> None:
    entry = MANIFEST["digits_float"]
    session = ort_session(_onnx_model("digits_float"))
    split = load_split("digits")
    probs = np.concatenate(
        [session.run(None, {"input": x.reshape(1, 64).astype(np.float32)})[0] for x in split.x_test]
    )
    assert probs.shape == (len(split.y_test), 10)
    accuracy = float(np.mean(np.argmax(probs, axis=1) == split.y_test))
    assert abs(accuracy - entry["float_accuracy"]) <= 1 / len(split.y_test)
    assert abs(MANIFEST["digits"]["int_accuracy"] - accuracy) <= 0.01


def test_program_bytes_refuses_attested_model() -> None:
    with pytest.raises(ModelError, match="ATTESTED"):
        program_bytes("digits_float")
    with pytest.raises(ModelError, match="available"):
        model_path("nope")
