"""Where the pinned npm tools live and how to call them.

The project installs its Solidity compiler (npm ``solc``, wrapped by ``tools/solc`` into the native
command line) and ``anvil`` (npm ``@foundry-rs/anvil``) with ``npm ci``. Nothing is downloaded at run
time. Environment variables override the locations: ``ORACLE_SOLC`` and ``ORACLE_ANVIL``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from oracle.errors import ToolchainError

#: The hardfork the contracts are compiled for and anvil runs; keep both in step.
EVM_VERSION = "prague"
SOLC_VERSION = "0.8.37"


def repo_root() -> Path:
    """The source checkout this package was installed from (editable installs, tests, the demo)."""
    return Path(__file__).resolve().parents[2]


def solc_path() -> Path:
    """Path of the native-compatible ``solc`` shim."""
    env = os.environ.get("ORACLE_SOLC")
    path = Path(env) if env else repo_root() / "tools" / "solc"
    if not path.exists():
        raise ToolchainError(f"solc shim not found at {path}; run `make setup` (npm install) in the repository")
    if not (repo_root() / "node_modules" / "solc").exists() and not env:
        raise ToolchainError("npm package 'solc' is missing; run `make setup` (npm install) in the repository root")
    return path


def anvil_path() -> Path:
    """Path of the anvil binary shipped by npm ``@foundry-rs/anvil`` (or ``ORACLE_ANVIL``)."""
    env = os.environ.get("ORACLE_ANVIL")
    if env:
        return Path(env)
    candidate = repo_root() / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if candidate.exists():
        return candidate
    for arch in ("anvil-linux-arm64", "anvil-darwin-arm64", "anvil-darwin-amd64"):
        p = repo_root() / "node_modules" / "@foundry-rs" / arch / "bin" / "anvil"
        if p.exists():
            return p
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ToolchainError("anvil not found; run `make setup` (npm install) in the repository root or set ORACLE_ANVIL")
