"""Train the small digits CNN in plain numpy and export it as a float ONNX graph (deterministic).

Usage: ``.venv/bin/python scripts/train_digits_cnn.py [--out oracle/models/digits_cnn_float.onnx]``

Network (what a ``torch.nn.Sequential`` of the same layers exports, in eval mode)::

    input [N,1,8,8] pixel intensities 0..16
    Conv 3x3 (1->8, pad 1) -> BatchNormalization -> Relu -> MaxPool 2x2     -> [N,8,4,4]
    Conv 3x3 (8->16, pad 1) -> BatchNormalization -> Relu -> MaxPool 2x2    -> [N,16,2,2]
    Flatten -> Gemm (64->10, transB=1) -> Softmax                          -> [N,10]

Training: the train part of ``oracle.profile.datasets.load_split("digits")`` (the split every shipped
digits model uses), pixels divided by 16 (folded into the first convolution's weights on export),
cross-entropy, Adam, batch statistics in BatchNormalization while training and the population
statistics of the whole training set afterwards. float64 throughout, one seeded generator, no
framework: it runs in a few seconds on one core. The script then checks that onnxruntime running the
exported float32 graph predicts the same digits as this numpy model on the held-out set.

The build (``scripts/build_models.py``) does not retrain: it converts the shipped
``digits_cnn_float.onnx``; CI checks the conversion and its accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from oracle.profile.datasets import load_split  # noqa: E402

SEED = 0
EPOCHS = 30
BATCH = 32
LR = 3e-3
EPS = 1e-5
CHANNELS = (8, 16)
DEFAULT_OUT = ROOT / "oracle" / "models" / "digits_cnn_float.onnx"

Arr = np.ndarray


# ---------------------------------------------------------------- layers (forward caches for backward)


def _im2col_index(c: int, h: int, w: int, k: int, pad: int) -> tuple[Arr, Arr, Arr]:
    """Index arrays so ``xp[:, ci, ii, jj]`` is ``[N, C*k*k, H*W]`` for stride 1, 'same' padding."""
    ci = np.repeat(np.arange(c), k * k)
    ki = np.tile(np.repeat(np.arange(k), k), c)
    kj = np.tile(np.arange(k), k * c)
    oi = np.repeat(np.arange(h), w)
    oj = np.tile(np.arange(w), h)
    return ci[:, None], (ki[:, None] + oi[None, :]), (kj[:, None] + oj[None, :])


def conv_forward(x: Arr, wt: Arr, b: Arr) -> tuple[Arr, Any]:
    n, c, h, w = x.shape
    co, _, k, _ = wt.shape
    pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    idx = _im2col_index(c, h, w, k, pad)
    cols = xp[:, idx[0], idx[1], idx[2]]  # [N, C*k*k, H*W]
    out = np.einsum("ok,nkp->nop", wt.reshape(co, -1), cols) + b[None, :, None]
    return out.reshape(n, co, h, w), (x.shape, xp.shape, idx, cols, wt)


def conv_backward(dout: Arr, cache: Any) -> tuple[Arr, Arr, Arr]:
    xshape, xpshape, idx, cols, wt = cache
    n, co, h, w = dout.shape
    d = dout.reshape(n, co, h * w)
    dw = np.einsum("nop,nkp->ok", d, cols).reshape(wt.shape)
    db = d.sum(axis=(0, 2))
    dcols = np.einsum("ok,nop->nkp", wt.reshape(co, -1), d)
    dxp = np.zeros(xpshape)
    np.add.at(dxp, (slice(None), idx[0], idx[1], idx[2]), dcols)
    pad = wt.shape[2] // 2
    return dxp[:, :, pad : pad + xshape[2], pad : pad + xshape[3]], dw, db


def bn_forward(x: Arr, g: Arr, beta: Arr) -> tuple[Arr, Any]:
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    xh = (x - mu) / np.sqrt(var + EPS)
    return g[None, :, None, None] * xh + beta[None, :, None, None], (xh, var, g)


def bn_backward(dout: Arr, cache: Any) -> tuple[Arr, Arr, Arr]:
    xh, var, g = cache
    m = dout.shape[0] * dout.shape[2] * dout.shape[3]
    dg = (dout * xh).sum(axis=(0, 2, 3))
    db = dout.sum(axis=(0, 2, 3))
    dxh = dout * g[None, :, None, None]
    dx = (m * dxh - dxh.sum(axis=(0, 2, 3), keepdims=True) - xh * (dxh * xh).sum(axis=(0, 2, 3), keepdims=True))
    return dx / (m * np.sqrt(var + EPS)), dg, db


def pool_forward(x: Arr) -> tuple[Arr, Any]:
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2)
    out = win.max(axis=(3, 5))
    mask = win == out[:, :, :, None, :, None]
    mask = mask / mask.sum(axis=(3, 5), keepdims=True)  # ties share the gradient
    return out, mask


def pool_backward(dout: Arr, mask: Arr) -> Arr:
    n, c, h2, _, w2, _ = mask.shape
    return (mask * dout[:, :, :, None, :, None]).reshape(n, c, h2 * 2, w2 * 2)


# ---------------------------------------------------------------- the network


def init_params(rng: np.random.Generator) -> dict[str, Arr]:
    p: dict[str, Arr] = {}
    cin = 1
    for i, co in enumerate(CHANNELS):
        p[f"conv{i}.w"] = rng.normal(0, np.sqrt(2.0 / (cin * 9)), size=(co, cin, 3, 3))
        p[f"conv{i}.b"] = np.zeros(co)
        p[f"bn{i}.g"] = np.ones(co)
        p[f"bn{i}.b"] = np.zeros(co)
        cin = co
    n_flat = CHANNELS[-1] * 2 * 2
    p["fc.w"] = rng.normal(0, np.sqrt(1.0 / n_flat), size=(10, n_flat))
    p["fc.b"] = np.zeros(10)
    return p


def forward_train(p: dict[str, Arr], x: Arr) -> tuple[Arr, list[Any], list[Arr]]:
    caches: list[Any] = []
    stats: list[Arr] = []
    a = x
    for i in range(len(CHANNELS)):
        z, c1 = conv_forward(a, p[f"conv{i}.w"], p[f"conv{i}.b"])
        stats.append(z)
        y, c2 = bn_forward(z, p[f"bn{i}.g"], p[f"bn{i}.b"])
        r = np.maximum(y, 0.0)
        a, c3 = pool_forward(r)
        caches.append((c1, c2, y > 0, c3))
    flat = a.reshape(len(x), -1)
    logits = flat @ p["fc.w"].T + p["fc.b"]
    caches.append(flat)
    return logits, caches, stats


def backward(p: dict[str, Arr], caches: list[Any], dlogits: Arr) -> dict[str, Arr]:
    g: dict[str, Arr] = {}
    flat = caches[-1]
    g["fc.w"] = dlogits.T @ flat
    g["fc.b"] = dlogits.sum(axis=0)
    da = (dlogits @ p["fc.w"]).reshape(len(flat), CHANNELS[-1], 2, 2)
    for i in reversed(range(len(CHANNELS))):
        c1, c2, pos, c3 = caches[i]
        dr = pool_backward(da, c3)
        dy = dr * pos
        dz, g[f"bn{i}.g"], g[f"bn{i}.b"] = bn_backward(dy, c2)
        da, g[f"conv{i}.w"], g[f"conv{i}.b"] = conv_backward(dz, c1)
    return g


def forward_eval(p: dict[str, Arr], bn: list[tuple[Arr, Arr]], x: Arr) -> Arr:
    a = x
    for i in range(len(CHANNELS)):
        z, _ = conv_forward(a, p[f"conv{i}.w"], p[f"conv{i}.b"])
        mu, var = bn[i]
        y = (z - mu[None, :, None, None]) / np.sqrt(var[None, :, None, None] + EPS)
        y = p[f"bn{i}.g"][None, :, None, None] * y + p[f"bn{i}.b"][None, :, None, None]
        a, _ = pool_forward(np.maximum(y, 0.0))
    out: Arr = a.reshape(len(x), -1) @ p["fc.w"].T + p["fc.b"]
    return out


def population_stats(p: dict[str, Arr], x: Arr) -> list[tuple[Arr, Arr]]:
    """BatchNorm running statistics: mean and variance over the whole training set, layer by layer."""
    bn: list[tuple[Arr, Arr]] = []
    a = x
    for i in range(len(CHANNELS)):
        z, _ = conv_forward(a, p[f"conv{i}.w"], p[f"conv{i}.b"])
        mu, var = z.mean(axis=(0, 2, 3)), z.var(axis=(0, 2, 3))
        bn.append((mu, var))
        y = (z - mu[None, :, None, None]) / np.sqrt(var[None, :, None, None] + EPS)
        y = p[f"bn{i}.g"][None, :, None, None] * y + p[f"bn{i}.b"][None, :, None, None]
        a, _ = pool_forward(np.maximum(y, 0.0))
    return bn


def train(x: Arr, y: Arr, seed: int = SEED) -> tuple[dict[str, Arr], list[tuple[Arr, Arr]]]:
    rng = np.random.default_rng(seed)
    p = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(val) for k, val in p.items()}
    step = 0
    for epoch in range(EPOCHS):
        lr = LR * (0.5 * (1 + np.cos(np.pi * epoch / EPOCHS)))
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            idx = order[start : start + BATCH]
            logits, caches, _ = forward_train(p, x[idx])
            z = logits - logits.max(axis=1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            prob[np.arange(len(idx)), y[idx]] -= 1.0
            grads = backward(p, caches, prob / len(idx))
            step += 1
            for k in p:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                mh = m[k] / (1 - 0.9**step)
                vh = v[k] / (1 - 0.999**step)
                p[k] -= lr * mh / (np.sqrt(vh) + 1e-8)
    return p, population_stats(p, x)


# ---------------------------------------------------------------- ONNX export


def export(p: dict[str, Arr], bn: list[tuple[Arr, Arr]], pixel_scale: float) -> onnx.ModelProto:
    """The float32 graph torch.onnx.export writes for this network in eval mode (input in raw pixels)."""
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []

    def init(name: str, value: Arr) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    cur = "input"
    for i in range(len(CHANNELS)):
        w = p[f"conv{i}.w"] * (pixel_scale if i == 0 else 1.0)  # conv(x/16, W) = conv(x, W/16)
        conv_out, bn_out, relu_out, pool_out = (f"/conv{i}/Conv_output_0", f"/bn{i}/BatchNormalization_output_0",
                                                f"/relu{i}/Relu_output_0", f"/pool{i}/MaxPool_output_0")
        nodes.append(helper.make_node("Conv", [cur, init(f"conv{i}.weight", w), init(f"conv{i}.bias", p[f"conv{i}.b"])],
                                      [conv_out], name=f"/conv{i}/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                      strides=[1, 1], dilations=[1, 1], group=1))
        nodes.append(helper.make_node(
            "BatchNormalization",
            [conv_out, init(f"bn{i}.weight", p[f"bn{i}.g"]), init(f"bn{i}.bias", p[f"bn{i}.b"]),
             init(f"bn{i}.running_mean", bn[i][0]), init(f"bn{i}.running_var", bn[i][1])],
            [bn_out], name=f"/bn{i}/BatchNormalization", epsilon=EPS, momentum=0.9))
        nodes.append(helper.make_node("Relu", [bn_out], [relu_out], name=f"/relu{i}/Relu"))
        nodes.append(helper.make_node("MaxPool", [relu_out], [pool_out], name=f"/pool{i}/MaxPool",
                                      kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=0))
        cur = pool_out
    nodes.append(helper.make_node("Flatten", [cur], ["/Flatten_output_0"], name="/Flatten", axis=1))
    fc_in = ["/Flatten_output_0", init("fc.weight", p["fc.w"]), init("fc.bias", p["fc.b"])]
    nodes.append(helper.make_node("Gemm", fc_in, ["/fc/Gemm_output_0"], name="/fc/Gemm", alpha=1.0, beta=1.0, transB=1))
    nodes.append(helper.make_node("Softmax", ["/fc/Gemm_output_0"], ["output"], name="/Softmax", axis=1))
    graph = helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", 1, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9,
                              producer_name="scripts/train_digits_cnn.py")
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    split = load_split("digits")
    xtr = split.x_train.reshape(-1, 1, 8, 8) / 16.0
    xte = split.x_test.reshape(-1, 1, 8, 8) / 16.0
    p, bn = train(xtr, split.y_train)
    np_pred = forward_eval(p, bn, xte).argmax(axis=1)
    model = export(p, bn, 1.0 / 16.0)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ort_pred = sess.run(None, {"input": split.x_test.reshape(-1, 1, 8, 8).astype(np.float32)})[0].argmax(axis=1)
    agree = float(np.mean(np_pred == ort_pred))
    train_acc = float(np.mean(forward_eval(p, bn, xtr).argmax(axis=1) == split.y_train))
    print(f"train accuracy {train_acc:.4f}, held-out accuracy numpy {np.mean(np_pred == split.y_test):.4f}, "
          f"onnxruntime {np.mean(ort_pred == split.y_test):.4f}, agreement {agree:.4f}")
    if agree != 1.0:
        print("the exported graph does not reproduce the numpy model", file=sys.stderr)
        return 1
    args.out.write_bytes(model.SerializeToString(deterministic=True))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
