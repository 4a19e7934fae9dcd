"""Benchmarks (``make bench``): real receipts and timings written to ``bench/results.json`` and BENCHMARKS.md."""

from pathlib import Path

from oracle.chain import artifacts

# Gas is measured with the repository's test consumers (no-op, storing), which are not shipped in the package.
artifacts.add_search_dir(Path(__file__).resolve().parents[1] / "tests" / "artifacts")
