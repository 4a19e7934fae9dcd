"""``oracle challenger ...``: run the challenger daemon, show what it has seen."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.tx import Signer
from oracle.chain.txmanager import GWEI, FeePolicy
from oracle.challenger.daemon import Challenger, ChallengerConfig
from oracle.challenger.games import GamePolicy
from oracle.challenger.metrics import ChallengerMetrics
from oracle.challenger.store import Store
from oracle.challenger.verify import ClaimVerifier
from oracle.cli.errors import CliError, OracleTyper, check_port, check_rpc, load_deployment, signer_from_key
from oracle.runtime.model_store import ModelStore
from oracle.runtime.sandbox import SandboxLimits

app = OracleTyper(help="Challenger: re-execute every EXACT result and prove wrong ones on-chain.",
                  no_args_is_help=True)

KEY_ENV = "ORACLE_CHALLENGER_PRIVATE_KEY"


def _signer(keystore: Path | None, password_env: str, unlocked: str | None) -> Signer:
    if unlocked:
        if not Web3.is_address(unlocked):
            raise CliError(f"--unlocked {unlocked!r} is not an address (0x followed by 40 hex digits)", 2)
        return Web3.to_checksum_address(unlocked)
    if keystore:
        return keystore_account(keystore, password_env)
    key = os.environ.get(KEY_ENV)
    if key:
        return signer_from_key(key, KEY_ENV)
    raise CliError(f"no key: pass --keystore FILE (password in ${password_env}), set ${KEY_ENV}, "
                      "or --unlocked ADDRESS for a devnet account", 2)


def keystore_account(keystore: Path, password_env: str) -> LocalAccount:
    """The account in an encrypted keystore; a missing file, a bad file and a wrong password are three messages."""
    if not keystore.is_file():
        raise CliError(f"keystore {keystore} does not exist; create one (docs/challenger-guide.md, "
                       "`oracle account new`) or fix --keystore", 2)
    password = os.environ.get(password_env)
    if password is None:
        raise CliError(f"set {password_env} to the keystore password (it is never read from a file)", 2)
    try:
        blob = json.loads(keystore.read_text())
    except ValueError:
        raise CliError(f"{keystore} is not a keystore file (not JSON)", 2) from None
    if not isinstance(blob, dict) or "crypto" not in {k.lower() for k in blob}:
        raise CliError(f"{keystore} is not a keystore file (no crypto section)", 2)
    try:
        account: LocalAccount = Account.from_key(Account.decrypt(blob, password))
        return account
    except ValueError:
        raise CliError(f"wrong password for keystore {keystore} (from ${password_env})", 2) from None


def _client(rpc: str, deployment: Path | None, oracle: str | None) -> tuple[OracleClient, int]:
    if deployment:
        dep = load_deployment(deployment)
        return OracleClient(check_rpc(rpc, timeout=30), dep.oracle), dep.block
    if oracle:
        if not Web3.is_address(oracle):
            raise CliError(f"--oracle {oracle!r} is not an address", 2)
        return OracleClient(check_rpc(rpc, timeout=30), oracle), 0
    raise CliError("pass --deployment FILE (written by `oracle chain deploy`) or --oracle ADDRESS", 2)


@app.command()
def run(
    rpc: Annotated[str, typer.Option(envvar="ORACLE_RPC_URL", help="JSON-RPC endpoint.")] = "http://127.0.0.1:8545",
    deployment: Annotated[Path | None, typer.Option(help="Deployment JSON (oracle address, start block).")] = None,
    oracle: Annotated[str | None, typer.Option(help="InferenceOracle address (instead of --deployment).")] = None,
    db: Annotated[Path, typer.Option(help="SQLite state file.")] = Path("challenger.sqlite3"),
    model_dir: Annotated[Path, typer.Option(help="Model cache directory.")] = Path("model-cache"),
    keystore: Annotated[Path | None, typer.Option(help="Encrypted keystore of the challenger account.")] = None,
    password_env: Annotated[str, typer.Option(help="Env var holding the keystore password.")] = (
        "ORACLE_KEYSTORE_PASSWORD"),
    unlocked: Annotated[str | None, typer.Option(help="Devnet only: an account the node unlocks.")] = None,
    confirmations: Annotated[int, typer.Option(help="Blocks to trail the head by.")] = 0,
    poll: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    metrics_port: Annotated[int, typer.Option(help="Prometheus /metrics port (0: off).")] = 0,
    sandbox_timeout: Annotated[float, typer.Option(help="Seconds one re-execution batch may take.")] = 10.0,
    sandbox_memory_mb: Annotated[int, typer.Option(help="Address-space limit of each sandbox child.")] = 2048,
    quarantine_seconds: Annotated[float, typer.Option(help="How long a model over the limits is left alone.")] = (
        3600.0),
    max_fee_gwei: Annotated[int, typer.Option(help="Cap on a challenge's maxFeePerGas.")] = 500,
    stuck_after: Annotated[float, typer.Option(help="Seconds before a pooled tx of ours is re-priced.")] = 12.0,
    max_game_bond_eth: Annotated[float, typer.Option(help="Largest dispute-game bond to post (ETH).")] = 1.0,
    max_open_games: Annotated[int, typer.Option(help="Dispute games of ours running at once.")] = 8,
) -> None:
    """Watch every attested result, re-execute EXACT ones, challenge the wrong ones."""
    signer = _signer(keystore, password_env, unlocked)
    client, start = _client(rpc, deployment, oracle)
    check_port("127.0.0.1", metrics_port, "challenger's /metrics endpoint")
    metrics = ChallengerMetrics()
    models = ModelStore(model_dir, max_model_bytes=64 * 2**20, max_tensor_bytes=16 * 2**20)
    limits = SandboxLimits(timeout=sandbox_timeout, memory_bytes=sandbox_memory_mb * 2**20)
    config = ChallengerConfig(confirmations=confirmations, poll_interval=poll, start_block=start,
                              quarantine_seconds=quarantine_seconds,
                              fees=FeePolicy(max_fee=max_fee_gwei * GWEI, stuck_after=stuck_after),
                              games=GamePolicy(max_game_bond=int(max_game_bond_eth * 10**18),
                                               max_open_games=max_open_games))
    daemon = Challenger(client, Store(db), ClaimVerifier(client, models, limits), signer, config, metrics)
    from oracle.app import run_challenger

    run_challenger(daemon, metrics_port)


@app.command()
def status(db: Annotated[Path, typer.Option(help="SQLite state file.")] = Path("challenger.sqlite3")) -> None:
    """Counts of claims by state, the cursor, and models in quarantine or whose file is not bound."""
    if not db.exists():
        raise CliError(f"{db} does not exist; run `oracle challenger run` first", 2)
    store = Store(db)
    models = {f"{m}/{aspect}": {"status": st, "reason": why} for (m, aspect), (st, why) in store.models().items()
              if st != "bound"}
    typer.echo(json.dumps({"cursor": store.last_block(), "claims": store.counts(), "models": models}, indent=2))
