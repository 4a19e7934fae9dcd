"""Helpers shared by the integer-profile tests: build small ONNX graphs and run them three ways."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

OPSET = 17
IR_VERSION = 9


def const(name: str, values: object, dtype: type = np.int64) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def make_model(
    nodes: Sequence[onnx.NodeProto],
    input_shape: Sequence[int | str],
    output_shape: Sequence[int | str] | None,
    inits: Sequence[TensorProto] = (),
    input_type: int = TensorProto.INT64,
    output_type: int = TensorProto.INT64,
    opset: int = OPSET,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        list(nodes),
        "test",
        [helper.make_tensor_value_info("x", input_type, list(input_shape))],
        [
            helper.make_tensor_value_info(
                "y", output_type, None if output_shape is None else list(output_shape)
            )
        ],
        initializer=list(inits),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)


def ort_session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return np.asarray(ort_session(model).run(None, {"x": x})[0])


def evaluator_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return np.asarray(ReferenceEvaluator(model).run(None, {"x": x})[0])
