"""Property tests: random programs in the profile run bit-identically on onnxruntime and the reference.

The generator builds small MLP-like graphs (MatMul, broadcast elementwise ops, rescales, clips,
reshapes, casts, a final ArgMax) and keeps its own conservative bound on every value, rescaling with
a Div when a value could approach int64; so the compiler must accept every graph it produces, and
inputs at the very ends of the declared width (up to int64 itself) are fair game.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from profile_helpers import const, make_model, ort_session

from oracle.profile.codec import encode_tensor, narrowest_width, width_range
from oracle.profile.compiler import compile_onnx
from oracle.profile.program import decode, encode
from oracle.profile.reference import run, run_bytes

LIMIT = 2**62  # keep every |value| below this, so one more Add can never overflow
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@dataclass
class Builder:
    draw: st.DrawFn
    shape: tuple[int, int]
    bound: int
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    cur: str = "x"

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{len(self.nodes) + len(self.inits)}"

    def const_name(self, values: np.ndarray) -> str:
        name = self.fresh("c")
        self.inits.append(const(name, values))
        return name

    def emit(self, op: str, inputs: list[str], **attrs: object) -> None:
        out = self.fresh("t")
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{len(self.nodes)}", **attrs))
        self.cur = out

    def broadcast_shape(self) -> tuple[int, ...]:
        r, c = self.shape
        return self.draw(st.sampled_from([(r, c), (c,), (1, c), (r, 1), ()]))

    def small_values(self, shape: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
        n = int(np.prod(shape)) if shape else 1
        vals = self.draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
        return np.array(vals, dtype=np.int64).reshape(shape)

    def rescale(self, needed: int) -> None:
        """Divide by a power of two so that bound * needed stays below LIMIT."""
        assert needed < 2**40, "rescale target must leave room"
        k = 1
        while (self.bound >> k) * needed + needed >= LIMIT:
            k += 1
        k += self.draw(st.integers(0, 3))
        self.emit("Div", [self.cur, self.const_name(np.array(1 << k))])
        self.bound = (self.bound >> k) + 1

    def into_int32(self) -> None:
        """Max/Min/Clip operands must stay inside int32 (see intervals.compare_range_problem)."""
        if self.bound > INT32_MAX:
            k = self.bound.bit_length() - 31 + self.draw(st.integers(0, 3))
            self.emit("Div", [self.cur, self.const_name(np.array(1 << k))])
            self.bound = (self.bound >> k) + 1

    def step(self) -> None:
        kind = self.draw(
            st.sampled_from(
                [
                    "matmul",
                    "add",
                    "sub",
                    "mul",
                    "div",
                    "max",
                    "min",
                    "clip",
                    "transpose",
                    "reshape",
                    "flatten",
                    "identity",
                    "cast",
                    "self_add",
                    "self_sub",
                    "self_max",
                    "self_mul",
                ]
            )
        )
        r, c = self.shape
        if kind == "matmul":
            n = self.draw(st.integers(1, 5))
            w = self.small_values((c, n), -3, 3)
            if self.bound * 3 * c >= LIMIT:
                self.rescale(3 * c)
            self.emit("MatMul", [self.cur, self.const_name(w)])
            self.shape = (r, n)
            self.bound = self.bound * 3 * c
        elif kind in ("add", "sub", "max", "min"):
            cshape = self.broadcast_shape()
            edge = kind in ("max", "min") and self.draw(st.booleans())
            lim = INT32_MAX if edge else 1000
            values = self.small_values(cshape, -lim - (1 if edge else 0), lim)
            if kind in ("add", "sub") and self.bound + 1001 >= LIMIT:
                self.rescale(1)
            if kind in ("max", "min"):
                self.into_int32()
            name = self.const_name(values)
            inputs = [self.cur, name] if self.draw(st.booleans()) else [name, self.cur]
            self.emit(kind.capitalize(), inputs)
            biggest = int(np.abs(values).max()) if values.size else 0
            self.bound = self.bound + biggest if kind in ("add", "sub") else max(self.bound, biggest)
        elif kind == "mul":
            values = self.small_values(self.broadcast_shape(), -4, 4)
            if self.bound * 4 >= LIMIT:
                self.rescale(4)
            self.emit("Mul", [self.cur, self.const_name(values)])
            self.bound *= 4
        elif kind == "div":
            values = self.small_values(self.broadcast_shape(), -9, 9)
            values[values == 0] = 7
            if self.bound >= LIMIT // 2:
                values[np.abs(values) == 1] = -2  # INT64_MIN / -1 is the one Div overflow
            self.emit("Div", [self.cur, self.const_name(values)])
        elif kind == "clip":
            self.into_int32()
            lo = self.draw(st.one_of(st.integers(INT32_MIN, INT32_MAX), st.just(-(2**63))))
            hi = self.draw(st.one_of(st.integers(max(lo, INT32_MIN), INT32_MAX), st.just(2**63 - 1)))
            self.emit("Clip", [self.cur, self.const_name(np.array(lo)), self.const_name(np.array(hi))])
            # Clip is monotone, so the ends of [-bound, bound] map to the ends of the result.
            self.bound = max(abs(min(max(-self.bound, lo), hi)), abs(min(max(self.bound, lo), hi)))
        elif kind == "transpose":
            self.emit("Transpose", [self.cur], perm=[1, 0])
            self.shape = (c, r)
        elif kind == "reshape":
            target = self.draw(st.sampled_from([(c, r), (1, r * c), (r * c, 1)]))
            spec = list(target)
            if self.draw(st.booleans()):
                spec[self.draw(st.integers(0, 1))] = -1
            self.emit("Reshape", [self.cur, self.const_name(np.array(spec))])
            self.shape = target
        elif kind == "flatten":
            axis = self.draw(st.sampled_from([0, 1, 2]))
            self.emit("Flatten", [self.cur], axis=axis)
            self.shape = (1, r * c) if axis == 0 else (r, c) if axis == 1 else (r * c, 1)
        elif kind == "identity":
            self.emit("Identity", [self.cur])
        elif kind == "cast":
            if self.bound >= 2**31:
                self.rescale(2**33)
            self.emit("Cast", [self.cur], to=TensorProto.INT32)
            self.emit("Cast", [self.cur], to=TensorProto.INT64)
        else:
            op = kind.removeprefix("self_").capitalize()
            grow = {"Add": 2, "Sub": 2, "Max": 1}.get(op)
            if op == "Max":
                self.into_int32()
            if op == "Mul":
                if self.bound >= 2**30:
                    k = self.bound.bit_length() - 30 + self.draw(st.integers(0, 3))
                    self.emit("Div", [self.cur, self.const_name(np.array(1 << k))])
                    self.bound = (self.bound >> k) + 1
                self.emit("Mul", [self.cur, self.cur])
                self.bound = self.bound * self.bound
            else:
                assert grow is not None
                if self.bound * grow >= LIMIT:
                    self.rescale(grow)
                self.emit(op, [self.cur, self.cur])
                self.bound *= grow


@dataclass(frozen=True)
class Case:
    model: onnx.ModelProto
    input_width: int
    output_width: int
    shape: tuple[int, ...]
    inputs: tuple[np.ndarray, ...]


@st.composite
def random_cases(draw: st.DrawFn) -> Case:
    width = draw(st.sampled_from([1, 2, 4, 8]))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)))
    lo, hi = width_range(width)
    b = Builder(draw, shape, bound=2 ** (8 * width - 1))
    for _ in range(draw(st.integers(1, 6))):
        b.step()
    out_shape: tuple[int, ...] = b.shape
    if draw(st.booleans()):
        axis = draw(st.integers(0, 1))
        keepdims = draw(st.integers(0, 1))
        b.emit("ArgMax", [b.cur], axis=axis, keepdims=keepdims, select_last_index=draw(st.integers(0, 1)))
        out_shape = (
            tuple(1 if i == axis else d for i, d in enumerate(b.shape)) if keepdims else (b.shape[1 - axis],)
        )
        out_width = 1
    else:
        out_width = narrowest_width([max(-b.bound, -(2**63)), min(b.bound, 2**63 - 1)])
    b.emit("Identity", [b.cur])
    b.nodes[-1].output[0] = "y"
    model = make_model(b.nodes, shape, out_shape, b.inits)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    xs = [
        np.full(shape, lo),
        np.full(shape, hi),
        rng.integers(lo, hi, size=shape, endpoint=True),
        rng.choice(np.array([lo, hi, 0, -1, 1]), size=shape),
        rng.integers(-2, 2, size=shape, endpoint=True),
    ]
    return Case(model, width, out_width, shape, tuple(np.asarray(x, dtype=np.int64) for x in xs))


@settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(random_cases())
def test_random_programs_match_onnxruntime_bit_for_bit(case: Case) -> None:
    program = compile_onnx(case.model, case.input_width, case.output_width)
    assert decode(encode(program)) == program
    session = ort_session(case.model)
    for x in case.inputs:
        expected = np.asarray(session.run(None, {"x": x})[0])
        ours = run(program, x)
        assert ours.shape == expected.shape
        assert np.array_equal(ours, expected)
        assert run_bytes(program, encode_tensor(x, case.input_width)) == encode_tensor(
            expected, case.output_width
        )
