"""Benchmark: onnxruntime vs the reference interpreter on the shipped EXACT models, plus accuracies.

Run: ``.venv/bin/python bench/profile_bench.py``. Timings are single-sample inference as the worker
does it (one onnxruntime session created up front, one ``run`` per request), median over many runs.
``runtime.ort_vs_reference_speedup`` is reference time / onnxruntime time (geometric mean over the
models); the reference interpreter is run as shipped, never slowed down.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort

from oracle.profile.datasets import load_split
from oracle.profile.models import load_manifest, model_bytes, program_bytes
from oracle.profile.program import decode
from oracle.profile.quantizer import Quantizer
from oracle.profile.reference import run as reference_run

REPEATS = 2000


def _median_seconds(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    for _ in range(50):  # warm-up
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def run() -> dict[str, float]:
    """Figures keyed ``runtime.*`` and ``models.<name>.*``."""
    manifest = load_manifest()["models"]
    results: dict[str, float] = {}
    speedups = []
    for name, entry in sorted(manifest.items()):
        results[f"models.{name}.float_accuracy"] = float(entry["float_accuracy"])
        if entry["mode"] != "EXACT":
            continue
        results[f"models.{name}.int_accuracy"] = float(entry["int_accuracy"])
        program = decode(program_bytes(name))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(model_bytes(name), options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        quantizer = Quantizer.from_dict(entry["quantizer"])
        x = quantizer.quantize(load_split(entry["dataset"]["name"]).x_test[0]).reshape(quantizer.shape)
        if not np.array_equal(session.run(None, {input_name: x})[0], reference_run(program, x)):
            raise AssertionError(f"{name}: onnxruntime and the reference disagree")
        feed = {input_name: x}
        t_ort = _median_seconds(functools.partial(session.run, None, feed))
        t_ref = _median_seconds(functools.partial(reference_run, program, x))
        results[f"runtime.{name}.ort_us"] = t_ort * 1e6
        results[f"runtime.{name}.reference_us"] = t_ref * 1e6
        results[f"runtime.{name}.ort_vs_reference_speedup"] = t_ref / t_ort
        speedups.append(t_ref / t_ort)
    results["runtime.ort_vs_reference_speedup"] = math.exp(sum(map(math.log, speedups)) / len(speedups))
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, sort_keys=True))
