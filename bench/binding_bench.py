"""Benchmark: the cost of the worker's guaranteed ``EXACT`` answer against bare onnxruntime.

The worker answers an ``EXACT`` request by running the program its file was proven to compile to
(:class:`oracle.profile.binding.ProgramRunner`), never onnxruntime (``docs/operator-guide.md``, "EXACT
answers"). On the largest shipped ``EXACT`` model (by program size), measured in one run with the two timed
alternately on the same inputs (median over many calls, warm caches):

- ``worker.exact_answer_overhead``: the worker's answer, canonical input bytes to canonical output bytes
  (decode, run, range check, encode) / bare onnxruntime ``session.run`` on the already-decoded tensor with the
  worker's pinned session options. The bare side gets no codec work, so this over-states the cost.
- ``worker.exact_answer_us`` and ``worker.exact_ort_us``: the two medians in microseconds.
- ``worker.exact_answer_overhead_executor``: the same ratio through the worker's sandboxed inference child
  (one input per call, pipe round trip included) for the program and for onnxruntime on the same file.
- ``worker.executor_call_us``: the median of one such call answered by the program: what a lone ``EXACT``
  request costs through :class:`oracle.runtime.executor.ProcessExecutor` and its sandbox (issue 13 moved
  the executor onto the shared sandbox's stream; this figure shows what that costs).

Run: ``.venv/bin/python -m bench.binding_bench``
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

REPEATS = 3000
EXECUTOR_REPEATS = 300


def _alternating_medians(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float]:
    for _ in range(100):  # warm-up
        a()
        b()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return statistics.median(ta), statistics.median(tb)


def run() -> dict[str, float]:
    import onnxruntime as ort
    from eth_utils import keccak

    from oracle.chain.types import Mode, Model
    from oracle.profile.binding import ProgramRunner, bind_exact
    from oracle.profile.codec import encode_tensor, numel
    from oracle.profile.datasets import load_split
    from oracle.profile.models import load_manifest, model_bytes, model_path, program_bytes
    from oracle.profile.program import decode
    from oracle.profile.quantizer import Quantizer
    from oracle.runtime.executor import ProcessExecutor
    from oracle.runtime.inference import session_options
    from oracle.runtime.model_store import ModelStore

    manifest = load_manifest()["models"]
    name = max((n for n, e in manifest.items() if e["mode"] == "EXACT"), key=lambda n: manifest[n]["program_size"])
    entry = manifest[name]
    data = model_bytes(name)
    program = decode(program_bytes(name))
    in_len = numel(program.input_shape) * program.input_width
    out_len = numel(program.output_shape) * program.output_width
    bind_exact(data, program_commitment=keccak(program_bytes(name)), input_length=in_len, output_length=out_len)
    runner = ProgramRunner(program)
    session = ort.InferenceSession(data, sess_options=session_options(), providers=["CPUExecutionProvider"])
    in_name, out_name = session.get_inputs()[0].name, session.get_outputs()[0].name

    quantizer = Quantizer.from_dict(entry["quantizer"])
    xs = [quantizer.quantize(row).reshape(program.input_shape) for row in load_split(entry["dataset"]["name"]).x_test]
    encoded = [encode_tensor(x, program.input_width) for x in xs]
    for x, d in zip(xs, encoded, strict=True):  # same answers, or the figure means nothing
        ort_out = encode_tensor(np.asarray(session.run([out_name], {in_name: x})[0]), program.output_width)
        if runner.run_bytes(d) != ort_out:
            raise AssertionError(f"{name}: the program and onnxruntime disagree")
    k = [0]

    def answer() -> bytes:
        k[0] = (k[0] + 1) % len(encoded)
        return runner.run_bytes(encoded[k[0]])

    def bare() -> object:
        return session.run([out_name], {in_name: xs[k[0]]})

    t_answer, t_ort = _alternating_medians(answer, bare, REPEATS)

    # Through the sandboxed child, one input per call (what a lone request costs the worker).
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(Path(tmp), max_model_bytes=64 * 2**20, max_tensor_bytes=16 * 2**20)
        info = store.get(Model(1, "0x" + "00" * 20, False, Mode.EXACT, 0, 0, in_len, out_len, keccak(data),
                               keccak(program_bytes(name)), model_path(name).as_uri()))
        as_onnx = replace(info, program_path=None, program_commitment=None)
        ex = ProcessExecutor()
        try:
            def via_program() -> object:
                return ex.run(info, [encoded[k[0]]])

            def via_ort() -> object:
                return ex.run(as_onnx, [encoded[k[0]]])

            if via_program() != via_ort():
                raise AssertionError("executor: the program and onnxruntime disagree")
            t_ex_prog, t_ex_ort = _alternating_medians(via_program, via_ort, EXECUTOR_REPEATS)
        finally:
            ex.close()
    return {
        "worker.exact_answer_overhead": round(t_answer / t_ort, 3),
        "worker.exact_answer_us": round(t_answer * 1e6, 2),
        "worker.exact_ort_us": round(t_ort * 1e6, 2),
        "worker.exact_answer_overhead_executor": round(t_ex_prog / t_ex_ort, 3),
        "worker.executor_call_us": round(t_ex_prog * 1e6, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, sort_keys=True))
