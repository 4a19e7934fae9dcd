"""Float ONNX graphs shaped the way ``torch.onnx.export`` writes a ``nn.Sequential`` MLP.

PyTorch is not a dependency, yet the converter must read what PyTorch users upload: ``Gemm`` nodes
with ``transB=1`` and ``[out, in]`` weights named ``fc{i}.weight``, ``Relu`` between them, an optional
final ``Softmax``/``Sigmoid``, and a dynamic ``batch_size`` dimension. This module writes exactly that
graph from plain arrays, for the shipped ATTESTED demo model and for the converter's tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9


def torch_style_mlp(
    weights: Sequence[npt.NDArray[np.floating[Any]]],
    biases: Sequence[npt.NDArray[np.floating[Any]]],
    final_activation: str | None = "Softmax",
    dynamic_batch: bool = True,
    use_matmul: bool = False,
) -> onnx.ModelProto:
    """A float32 MLP graph: ``weights[i]`` is ``[in, out]`` (scikit-learn's ``coefs_`` layout).

    ``use_matmul`` writes ``MatMul`` + ``Add`` instead of ``Gemm`` (what some exporters emit for
    ``nn.Linear`` on non-2-D inputs). ``final_activation`` is ``"Softmax"``, ``"Sigmoid"`` or ``None``.
    """
    if len(weights) != len(biases) or not weights:
        raise ValueError("need one bias per weight matrix and at least one layer")
    n_in = int(weights[0].shape[0])
    batch: str | int = "batch_size" if dynamic_batch else 1
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []
    cur = "input"
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        name = f"fc{i + 1}"
        out = f"/{name}/Gemm_output_0"
        bias = numpy_helper.from_array(np.asarray(b, dtype=np.float32).reshape(-1), f"{name}.bias")
        if use_matmul:
            weight = numpy_helper.from_array(np.asarray(w, dtype=np.float32), f"{name}.weight")
            mm = f"/{name}/MatMul_output_0"
            nodes.append(helper.make_node("MatMul", [cur, weight.name], [mm], name=f"/{name}/MatMul"))
            nodes.append(helper.make_node("Add", [bias.name, mm], [out], name=f"/{name}/Add"))
        else:
            # torch stores nn.Linear weights as [out, in] and exports Gemm with transB=1.
            weight = numpy_helper.from_array(np.asarray(w, dtype=np.float32).T.copy(), f"{name}.weight")
            nodes.append(
                helper.make_node(
                    "Gemm",
                    [cur, weight.name, bias.name],
                    [out],
                    name=f"/{name}/Gemm",
                    alpha=1.0,
                    beta=1.0,
                    transB=1,
                )
            )
        inits += [weight, bias]
        cur = out
        if i < len(weights) - 1:
            relu = f"/relu{i + 1}/Relu_output_0"
            nodes.append(helper.make_node("Relu", [cur], [relu], name=f"/relu{i + 1}/Relu"))
            cur = relu
    n_out = int(weights[-1].shape[1])
    if final_activation is not None:
        attrs: dict[str, Any] = {"axis": 1} if final_activation == "Softmax" else {}
        nodes.append(
            helper.make_node(final_activation, [cur], ["output"], name=f"/{final_activation}", **attrs)
        )
    else:
        nodes.append(helper.make_node("Identity", [cur], ["output"], name="/Identity"))
    graph = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, n_in])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, n_out])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="pytorch",
        producer_version="2.3.0",
    )
    onnx.checker.check_model(model)
    return model
