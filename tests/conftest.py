"""Shared fixtures: one real anvil per test session, chain snapshot/revert around every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from oracle.chain import artifacts
from oracle.chain.devnet import Devnet

# The repository's test contracts (not shipped in the package; see oracle.chain.artifacts).
artifacts.add_search_dir(Path(__file__).resolve().parent / "artifacts")


@pytest.fixture(scope="session")
def devnet() -> Iterator[Devnet]:
    with Devnet() as d:
        yield d


@pytest.fixture(scope="session")
def session_w3(devnet: Devnet) -> Web3:
    w3 = Web3(Web3.HTTPProvider(devnet.url, request_kwargs={"timeout": 60}))
    assert w3.is_connected()
    return w3


@pytest.fixture
def w3(session_w3: Web3) -> Iterator[Web3]:
    """The session's chain, reverted to its previous state after the test (cheap: evm_snapshot).

    anvil keeps its fee state across ``evm_revert``: after a test that moved the base fee (the challenger chaos
    test's proof-heavy blocks, a fee spike), the reverted head can say 7 wei while the next block charges more
    than a gwei, and a transaction priced from the head is refused. The next block's base fee is set back to
    the head's."""
    snap = session_w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield session_w3
    finally:
        session_w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
        head_fee = session_w3.eth.get_block("latest").get("baseFeePerGas", 0)
        session_w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(head_fee)])  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def accounts(session_w3: Web3) -> list[str]:
    return list(session_w3.eth.accounts)
