"""``oracle chain ...``: deploy the system and register models from the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from eth_utils.crypto import keccak
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.tx import Signer, address_of
from oracle.chain.types import ETH, Mode, ModelSpec
from oracle.cli.errors import CliError, OracleTyper, acting_as, check_rpc, load_deployment, signer_from_key

app = OracleTyper(help="Start a devnet, deploy contracts, fund accounts, register models.", no_args_is_help=True)

RpcOpt = Annotated[str, typer.Option(envvar="ORACLE_RPC_URL", help="JSON-RPC endpoint.")]


def _signer(unlocked: str | None) -> Signer:
    if unlocked:
        if not Web3.is_address(unlocked):
            raise CliError(f"--unlocked {unlocked!r} is not an address (0x followed by 40 hex digits)", 2)
        return acting_as(Web3.to_checksum_address(unlocked))
    key = os.environ.get("ORACLE_PRIVATE_KEY")
    if not key:
        raise CliError("set ORACLE_PRIVATE_KEY (environment only) or pass --unlocked ADDRESS on a devnet", 2)
    return acting_as(signer_from_key(key, "ORACLE_PRIVATE_KEY"))


@app.command()
def devnet(
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1).")] = 8545,
    block_time: Annotated[float | None, typer.Option(help="Seconds per block (default: a block per tx).")] = None,
) -> None:
    """Run a local anvil devnet in the foreground (the anvil shipped by `make setup`), until Ctrl-C.

    Its accounts are anvil's well-known ones (mnemonic "test test ... junk"), unlocked and funded: devnet only.
    """
    from oracle.chain.devnet import Devnet
    from oracle.cli.errors import check_port

    check_port("127.0.0.1", port, "devnet")
    cmd = Devnet(block_time=block_time).command(port)
    typer.echo(f"devnet at http://127.0.0.1:{port} (first account 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266, "
               "unlocked); Ctrl-C stops it", err=True)
    os.execv(cmd[0], cmd)


@app.command()
def fund(
    address: Annotated[str, typer.Argument(help="Account to fund.")],
    eth: Annotated[float, typer.Option(help="Amount in ETH.")] = 10.0,
    rpc: RpcOpt = "http://127.0.0.1:8545",
    unlocked: Annotated[str | None, typer.Option(help="Devnet account paying (default: the node's first "
                                                     "unlocked account, unless ORACLE_PRIVATE_KEY is set).")] = None,
) -> None:
    """Send ETH to ADDRESS (e.g. a new keystore account), from ORACLE_PRIVATE_KEY or an unlocked devnet account."""
    if not Web3.is_address(address):
        raise CliError(f"{address!r} is not an address (0x followed by 40 hex digits)", 2)
    w3 = check_rpc(rpc)
    if unlocked is None and not os.environ.get("ORACLE_PRIVATE_KEY"):
        accounts = w3.eth.accounts
        if not accounts:
            raise CliError("the node has no unlocked account; set ORACLE_PRIVATE_KEY to the paying account", 2)
        unlocked = accounts[0]
    signer = _signer(unlocked)
    tx = {"from": address_of(signer), "to": Web3.to_checksum_address(address), "value": int(eth * 10**18)}
    if isinstance(signer, str):
        tx_hash = w3.eth.send_transaction(tx)
    else:
        tx.update(nonce=w3.eth.get_transaction_count(signer.address, "pending"), gas=21_000,
                  chainId=w3.eth.chain_id, maxFeePerGas=2 * w3.eth.gas_price + 10**9, maxPriorityFeePerGas=10**9)
        tx_hash = w3.eth.send_raw_transaction(signer.sign_transaction(tx).raw_transaction)  # type: ignore[arg-type]
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    typer.echo(f"sent {eth} ETH to {Web3.to_checksum_address(address)}; balance now "
               f"{w3.eth.get_balance(Web3.to_checksum_address(address)) / 10**18} ETH")


@app.command()
def deploy(
    rpc: RpcOpt = "http://127.0.0.1:8545",
    out: Annotated[Path, typer.Option(help="Where to write the deployment JSON.")] = Path("deployment.json"),
    unlocked: Annotated[str | None, typer.Option(help="Devnet account the node unlocks.")] = None,
    window: int = DeployParams.challenge_window,
    timeout: int = DeployParams.request_timeout,
    unbonding: int = DeployParams.unbonding_period,
    bond_ratio: int = DeployParams.min_bond_ratio,
    max_callback_gas: int = DeployParams.max_callback_gas,
    dispute_game: Annotated[bool, typer.Option(help="Also deploy the dispute game (models over the cap).")] = True,
    exclusive_period: Annotated[int, typer.Option(
        help="Seconds a request is reserved for its assigned operator (0: no assignment).")] = (
        DeployParams.exclusive_period),
    min_operator_stake: Annotated[int, typer.Option(
        help="Stake (wei) an operator needs to be listed for assignment.")] = DeployParams.min_operator_stake,
    max_assignment_weight: Annotated[int, typer.Option(
        help="Free stake (wei) above which an operator draws no more assignment weight.")] = (
        DeployParams.max_assignment_weight),
) -> None:
    """Deploy IntegerVerifier + InferenceOracle (+ DisputeGame) and write the deployment file."""
    signer = _signer(unlocked)
    w3 = check_rpc(rpc)
    dep = deploy_system(w3, signer, DeployParams(
        window, timeout, unbonding, bond_ratio, max_callback_gas, dispute_game=dispute_game,
        exclusive_period=exclusive_period, min_operator_stake=min_operator_stake,
        max_assignment_weight=max_assignment_weight))
    dep.save(out)
    typer.echo(dep.to_json())


@app.command()
def register(
    onnx_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    uri: Annotated[str, typer.Option(help="Where workers fetch the file (file://, https://, cas://0x<keccak>).")],
    fee: Annotated[int, typer.Option(help="Fee in wei (in the token's base units with --fee-token).")],
    input_length: Annotated[int, typer.Option(help="Canonical input bytes.")],
    output_length: Annotated[int, typer.Option(help="Canonical output bytes.")],
    deployment: Annotated[Path, typer.Option()] = Path("deployment.json"),
    rpc: RpcOpt = "http://127.0.0.1:8545",
    bond: Annotated[int | None, typer.Option(help="Bond in wei (default: min ratio x fee).")] = None,
    program: Annotated[Path | None, typer.Option(help="EXACT: compiled program (`oracle model compile`).")] = None,
    unlocked: Annotated[str | None, typer.Option()] = None,
    fee_token: Annotated[str | None, typer.Option(
        help="ERC-20 the fee is paid in (default: ETH). The bond stays in ETH, at least ratio x fee.")] = None,
) -> None:
    """Register a model version (EXACT when --program is given, else ATTESTED).

    Before sending anything it checks what workers check (oracle.cli.checks): the URI, a loadable single-input
    single-output file with the registered lengths and, for EXACT, that the file compiles to exactly the
    program being committed. A mismatched pair would make honest operators lose their bonds.
    """
    from oracle.cli.checks import check_model

    if fee_token is not None and not Web3.is_address(fee_token):
        raise CliError(f"--fee-token {fee_token!r} is not an address (0x followed by 40 hex digits)", 2)
    data = onnx_file.read_bytes()
    program_bytes = program.read_bytes() if program else None
    check_model(onnx_file, data, input_length=input_length, output_length=output_length, uri=uri,
                program_file=program, program_bytes=program_bytes)
    dep = load_deployment(deployment)
    signer = _signer(unlocked)
    client = OracleClient(check_rpc(rpc), dep.oracle)
    spec = ModelSpec(onnx_hash=keccak(data), fee=fee,
                     bond=bond if bond is not None else dep.params.min_bond_ratio * fee,
                     input_length=input_length, output_length=output_length,
                     mode=Mode.EXACT if program_bytes else Mode.ATTESTED, uri=uri,
                     program_commitment=keccak(program_bytes) if program_bytes else b"\x00" * 32,
                     fee_token=Web3.to_checksum_address(fee_token) if fee_token else ETH)
    model_id = client.register_model(signer, spec, program_bytes)
    typer.echo(json.dumps({"model_id": model_id, "mode": spec.mode.name, "fee_token": spec.fee_token}))


@app.command()
def quote(
    model_id: Annotated[int, typer.Argument(help="Model id.")],
    callback_gas: Annotated[int, typer.Option(help="Callback gas the request asks for.")] = 0,
    deployment: Annotated[Path, typer.Option()] = Path("deployment.json"),
    rpc: RpcOpt = "http://127.0.0.1:8545",
) -> None:
    """Print the full price of a request (JSON): the fee and its asset, and the ETH value to send (the ETH fee and
    the callback gas at twice the base fee). A token fee is pulled with transferFrom: approve the oracle first."""
    dep = load_deployment(deployment)
    client = OracleClient(check_rpc(rpc), dep.oracle)
    token, fee, value = client.price(model_id, callback_gas)
    in_token = int(token, 16) != 0
    out: dict[str, object] = {"model_id": model_id, "fee": fee, "fee_asset": token if in_token else "ETH",
                              "value_wei": value}
    if in_token:
        out["approve"] = f"approve {dep.oracle} for at least {fee} of {token} before requesting"
    typer.echo(json.dumps(out))
