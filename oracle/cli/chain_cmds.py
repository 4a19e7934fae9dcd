"""``oracle chain ...``: deploy the system and register models from the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment, DeployParams, deploy_system
from oracle.chain.tx import Signer
from oracle.chain.types import Mode, ModelSpec
from oracle.errors import OracleError

app = typer.Typer(help="Deploy contracts and register models.", no_args_is_help=True)


def _signer(unlocked: str | None) -> Signer:
    if unlocked:
        return Web3.to_checksum_address(unlocked)
    key = os.environ.get("ORACLE_PRIVATE_KEY")
    if not key:
        typer.echo("error: set ORACLE_PRIVATE_KEY (environment only) or pass --unlocked ADDRESS on a devnet",
                   err=True)
        raise typer.Exit(2)
    return Account.from_key(key)


@app.command()
def deploy(
    rpc: Annotated[str, typer.Option(envvar="ORACLE_RPC_URL")] = "http://127.0.0.1:8545",
    out: Annotated[Path, typer.Option(help="Where to write the deployment JSON.")] = Path("deployment.json"),
    unlocked: Annotated[str | None, typer.Option(help="Devnet account the node unlocks.")] = None,
    window: int = DeployParams.challenge_window,
    timeout: int = DeployParams.request_timeout,
    unbonding: int = DeployParams.unbonding_period,
    bond_ratio: int = DeployParams.min_bond_ratio,
    max_callback_gas: int = DeployParams.max_callback_gas,
    dispute_game: Annotated[bool, typer.Option(help="Also deploy the dispute game (models over the cap).")] = False,
) -> None:
    """Deploy IntegerVerifier + InferenceOracle (+ DisputeGame) and write the deployment file."""
    w3 = Web3(Web3.HTTPProvider(rpc))
    try:
        dep = deploy_system(w3, _signer(unlocked), DeployParams(window, timeout, unbonding, bond_ratio,
                                                                  max_callback_gas, dispute_game=dispute_game))
    except OracleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    dep.save(out)
    typer.echo(dep.to_json())


@app.command()
def register(
    onnx_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    uri: Annotated[str, typer.Option(help="Where workers fetch the file (file://, https://, cas://0x<keccak>).")],
    fee: Annotated[int, typer.Option(help="Fee in wei.")],
    input_length: Annotated[int, typer.Option(help="Canonical input bytes.")],
    output_length: Annotated[int, typer.Option(help="Canonical output bytes.")],
    deployment: Annotated[Path, typer.Option()] = Path("deployment.json"),
    rpc: Annotated[str, typer.Option(envvar="ORACLE_RPC_URL")] = "http://127.0.0.1:8545",
    bond: Annotated[int | None, typer.Option(help="Bond in wei (default: min ratio x fee).")] = None,
    program: Annotated[Path | None, typer.Option(help="EXACT: compiled program (`oracle model compile`).")] = None,
    unlocked: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Register a model version (EXACT when --program is given, else ATTESTED).

    Before sending anything it checks what workers check (oracle.cli.checks): the URI, a loadable single-input
    single-output file with the registered lengths and, for EXACT, that the file compiles to exactly the
    program being committed. A mismatched pair would make honest operators lose their bonds.
    """
    from oracle.cli.checks import check_model, one_line

    try:
        data = onnx_file.read_bytes()
        program_bytes = program.read_bytes() if program else None
        check_model(onnx_file, data, input_length=input_length, output_length=output_length, uri=uri,
                    program_file=program, program_bytes=program_bytes)
        dep = Deployment.load(deployment)
        client = OracleClient(Web3(Web3.HTTPProvider(rpc)), dep.oracle)
        spec = ModelSpec(onnx_hash=keccak(data), fee=fee,
                         bond=bond if bond is not None else dep.params.min_bond_ratio * fee,
                         input_length=input_length, output_length=output_length,
                         mode=Mode.EXACT if program_bytes else Mode.ATTESTED, uri=uri,
                         program_commitment=keccak(program_bytes) if program_bytes else b"\x00" * 32)
        model_id = client.register_model(_signer(unlocked), spec, program_bytes)
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback (RPC, file, revert, refusal)
        typer.echo(f"error: {one_line(exc)}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"model_id": model_id, "mode": spec.mode.name}))
