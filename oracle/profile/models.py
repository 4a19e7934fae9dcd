"""Loader for the shipped models in ``oracle/models/`` (written by ``scripts/build_models.py``).

Goes through ``importlib.resources`` so it works from a source tree and from an installed wheel alike;
callers get paths and bytes and never need to know where the package lives.
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from oracle.errors import ModelError

MANIFEST = "manifest.json"


def _models_dir() -> Traversable:
    return resources.files("oracle").joinpath("models")


def load_manifest() -> dict[str, Any]:
    """The shipped manifest: ``{"models": {name: entry}}`` with hashes, I/O specs and samples."""
    data: dict[str, Any] = json.loads(_models_dir().joinpath(MANIFEST).read_text(encoding="utf-8"))
    return data


def model_entry(name: str) -> dict[str, Any]:
    """One model's manifest entry; the error lists the shipped names."""
    models: dict[str, Any] = load_manifest()["models"]
    if name not in models:
        raise ModelError(f"no shipped model {name!r}; available: {', '.join(sorted(models))}")
    entry: dict[str, Any] = models[name]
    return entry


def model_path(name: str) -> Path:
    """Filesystem path of a shipped model's ONNX file."""
    return Path(str(_models_dir().joinpath(model_entry(name)["file"])))


def model_bytes(name: str) -> bytes:
    """Bytes of a shipped model's ONNX file."""
    return _models_dir().joinpath(model_entry(name)["file"]).read_bytes()


def program_bytes(name: str) -> bytes:
    """Encoded program of a shipped EXACT model (what the registry stores and commits to)."""
    entry = model_entry(name)
    if entry.get("mode") != "EXACT":
        raise ModelError(f"model {name!r} is {entry.get('mode')}, only EXACT models have a program")
    return _models_dir().joinpath(entry["program_file"]).read_bytes()
