"""``oracle node ...``: stake, unstake, withdraw stake or credits, run the worker, show status.

All commands read the node settings (``--config FILE`` or ``ORACLE_CONFIG``, plus ``ORACLE_*`` variables); the
key comes from a keystore (``ORACLE_KEYSTORE_PATH`` + ``ORACLE_KEYSTORE_PASSWORD``) or ``ORACLE_PRIVATE_KEY``.
While a node runs, withdraw credits through its API (``POST /admin/withdraw``) so its nonce owner sends it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from oracle.cli.errors import CliError, OracleTyper, acting_as, check_port, check_rpc, signer_from_key

app = OracleTyper(help="Operator node: stake, run the worker, withdraw earnings.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML/YAML/JSON settings file.",
                                                exists=True, dir_okay=False)]


def _ctx(config: Path | None) -> tuple[Any, Any, Any]:
    from oracle.chain.client import OracleClient
    from oracle.settings import NodeSettings, load_account

    settings = NodeSettings.load(config)
    account = acting_as(load_account(settings))
    oracle_address = settings.resolve_oracle_address()
    return settings, account, OracleClient(_first_rpc(settings), oracle_address)


def _first_rpc(settings: Any) -> Any:
    """A connected Web3 for the first RPC URL that answers (the node fails over the same way)."""
    errors = []
    for url in settings.rpc_urls:
        try:
            return check_rpc(url, timeout=settings.rpc_timeout)
        except CliError as exc:
            errors.append(str(exc))
    raise CliError(errors[0] if len(errors) == 1 else "no RPC endpoint answers: " + " | ".join(errors))


def _eth(wei: int) -> str:
    return f"{wei / 10**18:.6f} ETH"


@app.command()
def stake(amount_eth: Annotated[float, typer.Argument(help="Amount to add to the stake, in ETH.")],
          config: ConfigOpt = None) -> None:
    """Add stake (each attestation locks the model's bond from free stake)."""
    _, account, client = _ctx(config)
    receipt = client.stake(account, int(amount_eth * 10**18))
    typer.echo(f"staked {amount_eth} ETH in tx {receipt['transactionHash'].to_0x_hex()}; "
               f"stake now {_eth(client.stake_of(account.address).staked)}")


@app.command()
def unstake(amount_eth: Annotated[float, typer.Argument(help="Free stake to start unbonding, in ETH.")],
            config: ConfigOpt = None) -> None:
    """Start unbonding free stake (claim it with withdraw-stake after the unbonding period)."""
    _, account, client = _ctx(config)
    client.request_unstake(account, int(amount_eth * 10**18))
    st = client.stake_of(account.address)
    typer.echo(f"unbonding {_eth(st.pending)}; withdrawable at unix time {st.withdrawable_at}")


@app.command("withdraw-stake")
def withdraw_stake(to: Annotated[str | None, typer.Option(help="Recipient (default: the operator).")] = None,
                   config: ConfigOpt = None) -> None:
    """Withdraw unbonded stake once the unbonding period is over."""
    _, account, client = _ctx(config)
    receipt = client.withdraw_stake(account, to or account.address)
    typer.echo(f"withdrew unbonded stake in tx {receipt['transactionHash'].to_0x_hex()}")


@app.command()
def withdraw(to: Annotated[str | None, typer.Option(help="Recipient (default: the operator).")] = None,
             config: ConfigOpt = None,
             token: Annotated[str | None, typer.Option(
                 help="Withdraw the credits in this ERC-20 fee token instead of ETH.")] = None) -> None:
    """Withdraw earned credits (fees), in ETH or, with --token, in a fee token. Stop the node first, or use its
    POST /admin/withdraw (ETH)."""
    from web3 import Web3

    if token is not None and not Web3.is_address(token):
        raise CliError(f"--token {token!r} is not an address (0x followed by 40 hex digits)", 2)
    _, account, client = _ctx(config)
    if token is None:
        credits = client.credits_of(account.address)
    else:
        credits = client.token_credits_of(account.address, token)
    if credits == 0:
        typer.echo("no credits to withdraw")
        return
    if token is None:
        receipt = client.withdraw(account, to or account.address)
        amount = _eth(credits)
    else:
        receipt = client.withdraw_token(account, token, to or account.address)
        amount = f"{credits} (base units of {Web3.to_checksum_address(token)})"
    typer.echo(f"withdrew {amount} in tx {receipt['transactionHash'].to_0x_hex()}")


TRY_KEY_ENV = "ORACLE_TRY_PRIVATE_KEY"


@app.command()
def run(
    config: ConfigOpt = None,
    dashboard: Annotated[bool, typer.Option(help="Also serve the read-only dashboard at /dashboard.")] = False,
    try_model: Annotated[int | None, typer.Option(
        "--try-model", help="Enable the /try page (implies --dashboard) for this digits model id; visitors' "
                            f"requests are paid by ${TRY_KEY_ENV} or --try-unlocked, never the operator.")] = None,
    try_unlocked: Annotated[str | None, typer.Option(
        help="Devnet only: unlocked account paying for /try requests (instead of $" + TRY_KEY_ENV + ").")] = None,
) -> None:
    """Run the worker (listener, executor, submitter, finalizer, operator API) until SIGTERM / Ctrl-C."""
    import logging
    import os

    import structlog
    from web3 import Web3

    from oracle.api.dashboard import dashboard_router
    from oracle.app import serve_node
    from oracle.chain.client import OracleClient
    from oracle.settings import NodeSettings, load_account
    from oracle.worker.node import Node

    settings = NodeSettings.load(config)
    account = load_account(settings)
    oracle_address = settings.resolve_oracle_address()
    w3 = _first_rpc(settings)  # fail now, in one line, rather than retry an endpoint that is not there
    if settings.api_port:
        check_port(settings.api_host, settings.api_port, "operator API (api_port / ORACLE_API_PORT)")
    try_signer: Any = None
    if try_model is not None:
        if try_unlocked:
            if not Web3.is_address(try_unlocked):
                raise CliError(f"--try-unlocked {try_unlocked!r} is not an address", 2)
            try_signer = Web3.to_checksum_address(try_unlocked)
        elif os.environ.get(TRY_KEY_ENV):
            try_signer = signer_from_key(os.environ[TRY_KEY_ENV], TRY_KEY_ENV)
        else:
            raise CliError(f"--try-model needs the account paying visitors' requests: set ${TRY_KEY_ENV} or pass "
                           "--try-unlocked ADDRESS (devnet)", 2)
        if getattr(try_signer, "address", try_signer) == account.address:
            raise CliError("the /try account must not be the operator's (the node owns the operator's nonces)", 2)
        if not settings.api_port:
            raise CliError("--try-model needs the operator API (api_port is 0)", 2)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    node = Node.from_settings(settings, account=account)
    routers = []
    if dashboard or try_model is not None:
        # Its own client: the node's loop owns (and may rotate) the node's RPC connection.
        routers.append(dashboard_router(OracleClient(w3, oracle_address),
                                        start_block=settings.default_start_block() or 0,
                                        try_signer=try_signer, try_model_id=try_model))
    serve_node(node, install_signals=True, extra_routers=routers)


@app.command()
def status(config: ConfigOpt = None) -> None:
    """Show the operator's balance, stake, assignment weight, credits and the local job counts."""
    from rich.console import Console
    from rich.table import Table

    settings, account, client = _ctx(config)
    st = client.stake_of(account.address)
    table = Table(title=f"operator {account.address}")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("balance", _eth(client.w3.eth.get_balance(account.address)))
    table.add_row("stake", _eth(st.staked))
    table.add_row("locked in bonds", _eth(st.locked))
    table.add_row("unbonding", _eth(st.pending))
    floor, cap = client.min_operator_stake(), client.max_assignment_weight()
    if st.staked < floor:
        table.add_row("assignment", f"not listed: stake below {_eth(floor)}; requests open to all only")
    else:  # a request's assignee is drawn in proportion to min(free stake, cap)
        capped = f" (capped: free stake above {_eth(cap)} draws no more)" if st.free > cap else ""
        table.add_row("assignment weight", _eth(min(st.free, cap)) + capped)
    table.add_row("credits", _eth(client.credits_of(account.address)))
    if settings.db_path.exists():
        from oracle.worker.db import Database

        db = Database(settings.db_path)
        for state, n in sorted(db.counts().items()):
            table.add_row(f"jobs {state}", str(n))
        cur = db.last_block()
        table.add_row("cursor block", str(cur[0]) if cur else "-")
        for model_id, p in db.parked_models().items():
            table.add_row(f"model {model_id} PARKED", f"{p['dropped']} jobs dropped; `oracle node unpark {model_id}`")
        db.close()
    Console().print(table)


@app.command()
def unpark(model_id: Annotated[int, typer.Argument(help="Model id to serve again.")],
           config: ConfigOpt = None) -> None:
    """Serve a parked model again (it was too slow for its budget; raise model_timeouts first if it is)."""
    from oracle.settings import NodeSettings
    from oracle.worker.db import Database

    settings = NodeSettings.load(config)
    if not settings.db_path.exists():
        raise CliError(f"no node database at {settings.db_path}; pass the node's --config", 2)
    db = Database(settings.db_path)  # a running node reads the parked table at every step
    try:
        if not db.unpark_model(model_id):
            raise CliError(f"model {model_id} is not parked (see `oracle node status`)", 1)
    finally:
        db.close()
    typer.echo(f"model {model_id} un-parked; the node serves it again from its next step")
