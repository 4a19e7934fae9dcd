"""A float classifier's ONNX graph read as a chain of dense layers ``z = a @ W + b`` with ReLU between them.

What skl2onnx or torch.onnx export is reduced to a :class:`FloatNetwork`; the final monotone activation
(Softmax, Sigmoid: the arg-max does not change) and everything after it are dropped. The converter
(:mod:`oracle.profile.converter`) scales the result to fixed point; the CNN lowering reads graphs with
the same helpers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from oracle.errors import ProfileError

FloatArray = npt.NDArray[np.float64]

#: Float ops that end the dense chain: they are monotone in each score (or come after the arg-max).
TERMINAL_OPS = frozenset(
    {"Softmax", "Sigmoid", "LogSoftmax", "ArgMax", "ZipMap", "ArrayFeatureExtractor", "Normalizer"}
)
_PASS_THROUGH = frozenset({"Identity", "Cast", "Flatten", "Reshape"})


@dataclass(frozen=True)
class DenseLayer:
    """``z = a @ weight + bias``, then ReLU if ``relu``."""

    weight: FloatArray
    bias: FloatArray
    relu: bool


@dataclass(frozen=True)
class FloatNetwork:
    """The dense chain read from a float graph, with what is needed to score it."""

    layers: tuple[DenseLayer, ...]
    n_features: int
    class_labels: tuple[int, ...] | None  # label of each arg-max index, when the graph says
    final_activation: str | None  # the dropped monotone activation ("Sigmoid", "Softmax", ...)
    binary_single_logit: bool  # one score column: class 1 iff score > 0 (augmented with a 0 column)

    def scores(self, x: FloatArray) -> FloatArray:
        """Float64 forward pass to the pre-activation scores (used to check the extraction)."""
        a = np.asarray(x, dtype=np.float64)
        for layer in self.layers:
            a = a @ layer.weight + layer.bias
            if layer.relu:
                a = np.maximum(a, 0.0)
        return a

    def predict_index(self, x: FloatArray) -> npt.NDArray[np.int64]:
        result: npt.NDArray[np.int64] = np.argmax(self.scores(x), axis=1).astype(np.int64)
        return result


def _float_inits(graph: onnx.GraphProto) -> dict[str, FloatArray]:
    consts: dict[str, FloatArray] = {}
    for t in graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            raise ProfileError(f"initializer {t.name!r} uses external data", node=t.name)
        consts[t.name] = numpy_helper.to_array(t).astype(np.float64)
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t).astype(np.float64)
    return consts


def _node_name(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}#{index}"


Consumers = dict[str, list[tuple[int, onnx.NodeProto]]]


def read_graph(
    model: onnx.ModelProto | bytes,
) -> tuple[onnx.GraphProto, dict[str, FloatArray], onnx.ValueInfoProto, Consumers]:
    """What every float-graph reader starts from: the graph, its float constants, its one non-constant input,
    and for every value the nodes (with their index) that consume it."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load_model_from_string(bytes(model))
    graph = model.graph
    consts = _float_inits(graph)
    inputs = [vi for vi in graph.input if vi.name not in consts]
    if len(inputs) != 1:
        raise ProfileError(f"the float model must have one input, found {len(inputs)}")
    consumers: Consumers = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            consumers.setdefault(name, []).append((index, node))
    return graph, consts, inputs[0], consumers


def extract_network(model: onnx.ModelProto | bytes) -> FloatNetwork:
    """Read the dense chain from the graph input up to the first terminal op (see module doc)."""
    graph, consts, inp, consumers = read_graph(model)
    dims = inp.type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].HasField("dim_value"):
        raise ProfileError(f"input {inp.name!r} must be [batch, features] with static features")
    n_features = int(dims[1].dim_value)
    graph_outputs = {o.name for o in graph.output}

    layers: list[DenseLayer] = []
    width = n_features
    mat = np.eye(width)
    vec = np.zeros(width)
    touched = False  # whether the pending affine map differs from the identity
    class_labels: tuple[int, ...] | None = None
    final: str | None = None
    cur = inp.name

    def const_of(node: onnx.NodeProto, index: int, name: str) -> FloatArray:
        if name not in consts:
            raise ProfileError(
                f"{node.op_type} operand {name!r} must be a constant for the converter",
                node=_node_name(node, index),
            )
        return consts[name]

    while True:
        if cur in graph_outputs and cur != inp.name:
            break
        users = consumers.get(cur, [])
        if not users:
            break
        if len(users) > 1:
            if all(n.op_type in TERMINAL_OPS for _, n in users):
                final = users[0][1].op_type
                break
            index, node = users[1]
            raise ProfileError(
                "branching float graphs are not supported by the converter", node=_node_name(node, index)
            )
        index, node = users[0]
        where = _node_name(node, index)
        op = node.op_type
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        others = [n for n in node.input if n != cur]
        if op in TERMINAL_OPS:
            final = op
            break
        if op in _PASS_THROUGH:
            if op == "Cast" and attrs.get("to") not in (TensorProto.FLOAT, TensorProto.DOUBLE):
                raise ProfileError("only float-to-float Cast can be dropped", node=where)
            pass  # shapes stay [batch, width] in the graphs the converter accepts
        elif op == "Scaler":
            offset = np.asarray(attrs.get("offset", [0.0]), dtype=np.float64)
            scale = np.asarray(attrs.get("scale", [1.0]), dtype=np.float64)
            mat, vec = mat * scale, (vec - offset) * scale
            touched = True
        elif op in ("MatMul", "Gemm"):
            if node.input[0] != cur:
                raise ProfileError(f"{op} must take the activations as its first input", node=where)
            w = const_of(node, index, node.input[1])
            if op == "Gemm":
                if attrs.get("transA", 0):
                    raise ProfileError("Gemm with transA=1 is not supported", node=where)
                if attrs.get("transB", 0):
                    w = w.T
                w = w * float(attrs.get("alpha", 1.0))
                bias = (
                    const_of(node, index, node.input[2]) * float(attrs.get("beta", 1.0))
                    if len(node.input) > 2 and node.input[2]
                    else np.zeros(w.shape[1])
                )
            else:
                bias = np.zeros(w.shape[1])
            if w.ndim != 2 or w.shape[0] != width:
                raise ProfileError(
                    f"{op} weight shape {list(w.shape)} does not follow width {width}", node=where
                )
            mat, vec = mat @ w, vec @ w + np.broadcast_to(bias.reshape(-1), (w.shape[1],))
            width = w.shape[1]
            touched = True
        elif op in ("Add", "Sub", "Mul", "Div"):
            if len(others) != 1:
                raise ProfileError(f"{op} must combine the activations with one constant", node=where)
            c = np.broadcast_to(const_of(node, index, others[0]).reshape(-1), (width,)).astype(np.float64)
            if op == "Add":
                vec = vec + c
            elif op == "Sub":
                if node.input[0] == cur:
                    vec = vec - c
                else:
                    mat, vec = -mat, c - vec
            elif op == "Mul":
                mat, vec = mat * c, vec * c
            else:
                if node.input[0] != cur:
                    raise ProfileError("Div of a constant by the activations is not affine", node=where)
                mat, vec = mat / c, vec / c
            touched = True
        elif op == "Relu":
            layers.append(DenseLayer(mat, vec, relu=True))
            mat, vec, touched = np.eye(width), np.zeros(width), False
        elif op == "LinearClassifier":
            coef = np.asarray(attrs["coefficients"], dtype=np.float64)
            intercepts = np.asarray(attrs.get("intercepts", []), dtype=np.float64)
            n_targets = len(intercepts) if len(intercepts) else coef.size // width
            w = coef.reshape(n_targets, width).T
            if not len(intercepts):
                intercepts = np.zeros(n_targets)
            mat, vec = mat @ w, vec @ w + intercepts
            width = n_targets
            touched = True
            labels = attrs.get("classlabels_ints")
            if labels:
                class_labels = tuple(int(v) for v in labels)
            post = attrs.get("post_transform", b"NONE")
            final = (
                {b"LOGISTIC": "Sigmoid", b"SOFTMAX": "Softmax"}.get(post) if isinstance(post, bytes) else None
            )
            break
        else:
            raise ProfileError(
                f"float op {node.domain + '.' if node.domain else ''}{op} is not supported by the converter "
                "(dense chains of Gemm/MatMul/Add/Relu with a final Softmax/Sigmoid only)",
                node=where,
            )
        cur = node.output[0]
    if touched or not layers:
        layers.append(DenseLayer(mat, vec, relu=False))
    else:  # the chain ended on a ReLU: score the rectified activations directly
        layers.append(DenseLayer(np.eye(width), np.zeros(width), relu=False))

    if class_labels is None:
        for node in graph.node:
            if node.op_type == "ArrayFeatureExtractor" and node.input[0] in consts:
                class_labels = tuple(int(v) for v in consts[node.input[0]].reshape(-1))
    binary = layers[-1].weight.shape[1] == 1
    if binary:
        last = layers[-1]
        layers[-1] = DenseLayer(
            np.concatenate([np.zeros_like(last.weight), last.weight], axis=1),
            np.concatenate([np.zeros(1), last.bias]),
            relu=False,
        )
    return FloatNetwork(tuple(layers), n_features, class_labels, final, binary)
