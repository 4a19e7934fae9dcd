"""Every deployable contract fits EIP-170 (24,576 bytes of runtime code).

anvil runs with its default code-size limit (the project never lifts it), so an oversized contract would
fail to deploy on anvil exactly as on mainnet; this test names the culprit from the shipped artifacts.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest

EIP170_LIMIT = 24_576


def _deployable() -> list[tuple[str, str, int]]:
    out = []
    for entry in resources.files("oracle.artifacts").iterdir():
        if not entry.name.endswith(".json") or entry.name == "manifest.json":
            continue
        data = json.loads(entry.read_text())
        code = data["deployedBytecode"].removeprefix("0x")
        if code:
            out.append((data["contractName"], data["sourceName"], len(code) // 2))
    return sorted(out)


def test_core_contracts_are_present() -> None:
    names = {name for name, _, _ in _deployable()}
    assert {"InferenceOracle", "IntegerVerifier", "DigitMint", "CreditLender"} <= names


@pytest.mark.parametrize(("name", "source", "size"), _deployable(), ids=lambda v: v if isinstance(v, str) else "")
def test_runtime_code_fits_eip170(name: str, source: str, size: int) -> None:
    assert 0 < size <= EIP170_LIMIT, f"{name} ({source}) has {size} bytes of runtime code > {EIP170_LIMIT}"
