"""Fixtures for the verifier tests: the contracts are deployed once per session (tests revert to a
snapshot taken after that, so they are shared for free)."""

from __future__ import annotations

import pytest
from web3 import Web3
from web3.contract import Contract

from tests.verifier.helpers import deploy


@pytest.fixture(scope="session")
def verifier(session_w3: Web3) -> Contract:
    return deploy(session_w3, "IntegerVerifier")


@pytest.fixture(scope="session")
def chunk_writer(session_w3: Web3) -> Contract:
    return deploy(session_w3, "VerifierChunkWriter")
