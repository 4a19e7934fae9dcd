"""The demo's cast, each a real component running in this process: operator nodes, a challenger."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from fastapi import APIRouter

from oracle.app import start_api
from oracle.chain.client import OracleClient
from oracle.chain.devnet import DEV_MNEMONIC
from oracle.chain.types import Mode
from oracle.challenger.daemon import Challenger, ChallengerConfig
from oracle.challenger.store import Store
from oracle.challenger.verify import ClaimVerifier
from oracle.runtime.executor import Executor, Result
from oracle.runtime.model_checks import ModelInfo
from oracle.runtime.model_store import ModelStore
from oracle.settings import NodeSettings
from oracle.worker.node import Node

Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> Any:
    """anvil's well-known devnet account ``index`` (never use these keys anywhere else)."""
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


class CorruptingExecutor:
    """A dishonest operator's executor: runs the model honestly, then alters every ``every``-th EXACT output.

    This is what a cheating operator would do (save compute, bias a result); the protocol must catch it.
    """

    def __init__(self, inner: Executor, every: int = 2) -> None:
        self.inner = inner
        self.every = every
        self.seen = 0
        self.corrupted = 0

    def run(self, model: ModelInfo, inputs: Sequence[bytes]) -> list[Result]:
        results = self.inner.run(model, inputs)
        out: list[Result] = []
        for r in results:
            if isinstance(r, bytes) and model.mode is Mode.EXACT:
                self.seen += 1
                if self.seen % self.every == 1 or self.every == 1:
                    r = bytes([(r[0] + 1) % 10]) + r[1:]
                    self.corrupted += 1
            out.append(r)
        return out

    def close(self) -> None:
        self.inner.close()


@dataclass
class RunningNode:
    """An operator node on a background thread."""

    name: str
    node: Node
    thread: threading.Thread = field(init=False)
    api_port: int | None = None

    def start(self, extra_routers: Sequence[APIRouter] = (), serve_api: bool = False) -> RunningNode:
        self.node.setup()
        if serve_api:
            self.api_port = start_api(self.node, port=0, extra_routers=extra_routers)
        self.thread = threading.Thread(target=self.node.run, name=f"node-{self.name}", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.node.stop()
        self.thread.join(timeout=20)
        self.node.cleanup()


def make_node(name: str, url: str, oracle: str, start_block: int, workdir: Path, key_index: int,
              executor: Executor | None = None, min_time_left: int = 5) -> RunningNode:
    settings = NodeSettings.load(
        None, rpc_urls=[url], oracle_address=oracle, db_path=workdir / f"{name}.sqlite3",
        model_dir=workdir / f"{name}-models", poll_interval=0.1, api_port=0, confirmations=0,
        start_block=start_block, min_time_left=min_time_left, stuck_after=10.0,
        private_key=dev_account(key_index).key.hex(),
    )
    return RunningNode(name, Node.from_settings(settings, executor=executor))


@dataclass
class RunningChallenger:
    challenger: Challenger
    thread: threading.Thread = field(init=False)

    def start(self) -> RunningChallenger:
        self.thread = threading.Thread(target=self.challenger.run, name="challenger", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.challenger.stop()
        self.thread.join(timeout=20)  # run() closes the challenger's sandbox children on its way out
        self.challenger.store.close()


def make_challenger(client: OracleClient, workdir: Path, start_block: int, signer: Any) -> RunningChallenger:
    models = ModelStore(workdir / "challenger-models", max_model_bytes=64 * 2**20, max_tensor_bytes=16 * 2**20)
    daemon = Challenger(client, Store(workdir / "challenger.sqlite3"), ClaimVerifier(client, models),
                        signer, ChallengerConfig(poll_interval=0.2, start_block=start_block))
    return RunningChallenger(daemon)
