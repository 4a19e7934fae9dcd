"""Compiled contract artifacts shipped inside the package (written by ``make build``).

Only the product's contracts ship in ``oracle.artifacts``. The repository's test contracts (consumers that
revert, burn gas or re-enter; test helpers) are compiled to ``tests/artifacts``, which the test suite and the
benchmarks add with :func:`add_search_dir`; an installed package never sees them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from oracle.errors import ArtifactError


@dataclass(frozen=True)
class Artifact:
    """ABI and bytecode of one contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


_search_dirs: list[Path] = []


def add_search_dir(path: Path) -> None:
    """Also load artifacts from ``path`` (the repository's ``tests/artifacts``; never part of the package)."""
    if path not in _search_dirs:
        _search_dirs.append(path)
        load.cache_clear()


@cache
def load(name: str) -> Artifact:
    """Loads the artifact of contract ``name``; raises :class:`ArtifactError` with the fix if absent."""
    try:
        text = resources.files("oracle.artifacts").joinpath(f"{name}.json").read_text()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        extra = [d / f"{name}.json" for d in _search_dirs if (d / f"{name}.json").is_file()]
        if not extra:
            raise ArtifactError(
                f"no compiled artifact for contract {name!r}; run `make build` to compile contracts/"
            ) from exc
        text = extra[0].read_text()
    data = json.loads(text)
    return Artifact(name, data["abi"], data["bytecode"], data["deployedBytecode"])


def oracle_abi(own: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The ABI served at the oracle's address: `InferenceOracle`'s own functions (``own``: another build of it)
    and the `IOracleViews` its fallback serves from the lens."""
    own = load("InferenceOracle").abi if own is None else own
    names = {item.get("name") for item in own if item.get("type") == "function"}
    views = [item for item in load("IOracleViews").abi if item.get("type") == "function" and item["name"] not in names]
    return [*own, *views]


def all_error_abis() -> list[dict[str, Any]]:
    """Every custom error declared by any shipped contract (used to decode reverts by name)."""
    out: dict[str, dict[str, Any]] = {}
    entries = [*resources.files("oracle.artifacts").iterdir(), *(p for d in _search_dirs for p in d.iterdir())]
    for entry in entries:
        if not entry.name.endswith(".json") or entry.name == "manifest.json":
            continue
        for item in json.loads(entry.read_text())["abi"]:
            if item.get("type") == "error":
                sig = item["name"] + "(" + ",".join(_type_str(i) for i in item["inputs"]) + ")"
                out[sig] = item
    return list(out.values())


def _type_str(param: dict[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_type_str(c) for c in param["components"]) + ")" + t[len("tuple"):]
    return t
