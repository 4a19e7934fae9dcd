"""Session fixture for the stateful fuzzer: its own anvil (gas price 0, so balances are exact) with the
system deployed once; examples reset with evm_snapshot / evm_revert."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oracle.chain.devnet import Devnet
from tests.invariants.harness import FuzzSystem, deploy_fuzz_system


@pytest.fixture(scope="session")
def fuzz_system() -> Iterator[FuzzSystem]:
    # --base-fee 0 lets every transaction pay gas price 0: each wei is accounted for by the model.
    with Devnet(extra_args=("--base-fee", "0")) as devnet:
        yield deploy_fuzz_system(devnet.url)
