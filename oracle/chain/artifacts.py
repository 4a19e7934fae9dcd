"""Compiled contract artifacts shipped inside the package (written by ``make build``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from oracle.errors import ArtifactError


@dataclass(frozen=True)
class Artifact:
    """ABI and bytecode of one contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


@cache
def load(name: str) -> Artifact:
    """Loads the artifact of contract ``name``; raises :class:`ArtifactError` with the fix if absent."""
    try:
        text = resources.files("oracle.artifacts").joinpath(f"{name}.json").read_text()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise ArtifactError(
            f"no compiled artifact for contract {name!r}; run `make build` to compile contracts/"
        ) from exc
    data = json.loads(text)
    return Artifact(name, data["abi"], data["bytecode"], data["deployedBytecode"])


def all_error_abis() -> list[dict[str, Any]]:
    """Every custom error declared by any shipped contract (used to decode reverts by name)."""
    out: dict[str, dict[str, Any]] = {}
    root = resources.files("oracle.artifacts")
    for entry in root.iterdir():
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
