"""``oracle node ...``: stake, unstake, withdraw stake or credits, run the worker, show status.

All commands read the node settings (``--config FILE`` or ``ORACLE_CONFIG``, plus ``ORACLE_*`` variables); the
key comes from a keystore (``ORACLE_KEYSTORE_PATH`` + ``ORACLE_KEYSTORE_PASSWORD``) or ``ORACLE_PRIVATE_KEY``.
While a node runs, withdraw credits through its API (``POST /admin/withdraw``) so its nonce owner sends it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from oracle.errors import OracleError

app = typer.Typer(help="Operator node: stake, run the worker, withdraw earnings.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML/YAML/JSON settings file.",
                                                exists=True, dir_okay=False)]


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=1)


def _ctx(config: Path | None) -> tuple[Any, Any, Any]:
    from web3 import Web3

    from oracle.chain.client import OracleClient
    from oracle.settings import NodeSettings, load_account

    settings = NodeSettings.load(config)
    account = load_account(settings)
    w3 = Web3(Web3.HTTPProvider(settings.rpc_urls[0], request_kwargs={"timeout": settings.rpc_timeout}))
    if not w3.is_connected():
        raise OracleError(f"cannot reach the RPC endpoint {settings.rpc_urls[0]}; check ORACLE_RPC_URLS")
    return settings, account, OracleClient(w3, settings.resolve_oracle_address())


def _eth(wei: int) -> str:
    return f"{wei / 10**18:.6f} ETH"


@app.command()
def stake(amount_eth: Annotated[float, typer.Argument(help="Amount to add to the stake, in ETH.")],
          config: ConfigOpt = None) -> None:
    """Add stake (each attestation locks the model's bond from free stake)."""
    try:
        _, account, client = _ctx(config)
        receipt = client.stake(account, int(amount_eth * 10**18))
        typer.echo(f"staked {amount_eth} ETH in tx {receipt['transactionHash'].to_0x_hex()}; "
                   f"stake now {_eth(client.stake_of(account.address).staked)}")
    except (OracleError, ValueError) as exc:
        raise _fail(exc) from None


@app.command()
def unstake(amount_eth: Annotated[float, typer.Argument(help="Free stake to start unbonding, in ETH.")],
            config: ConfigOpt = None) -> None:
    """Start unbonding free stake (claim it with withdraw-stake after the unbonding period)."""
    try:
        _, account, client = _ctx(config)
        client.request_unstake(account, int(amount_eth * 10**18))
        st = client.stake_of(account.address)
        typer.echo(f"unbonding {_eth(st.pending)}; withdrawable at unix time {st.withdrawable_at}")
    except (OracleError, ValueError) as exc:
        raise _fail(exc) from None


@app.command("withdraw-stake")
def withdraw_stake(to: Annotated[str | None, typer.Option(help="Recipient (default: the operator).")] = None,
                   config: ConfigOpt = None) -> None:
    """Withdraw unbonded stake once the unbonding period is over."""
    try:
        _, account, client = _ctx(config)
        receipt = client.withdraw_stake(account, to or account.address)
        typer.echo(f"withdrew unbonded stake in tx {receipt['transactionHash'].to_0x_hex()}")
    except (OracleError, ValueError) as exc:
        raise _fail(exc) from None


@app.command()
def withdraw(to: Annotated[str | None, typer.Option(help="Recipient (default: the operator).")] = None,
             config: ConfigOpt = None) -> None:
    """Withdraw earned credits (fees). Stop the node first, or use its POST /admin/withdraw."""
    try:
        _, account, client = _ctx(config)
        credits = client.credits_of(account.address)
        if credits == 0:
            typer.echo("no credits to withdraw")
            return
        receipt = client.withdraw(account, to or account.address)
        typer.echo(f"withdrew {_eth(credits)} in tx {receipt['transactionHash'].to_0x_hex()}")
    except (OracleError, ValueError) as exc:
        raise _fail(exc) from None


@app.command()
def run(
    config: ConfigOpt = None,
    dashboard: Annotated[bool, typer.Option(help="Also serve the read-only dashboard at /dashboard.")] = False,
) -> None:
    """Run the worker (listener, executor, submitter, finalizer, operator API) until SIGTERM / Ctrl-C."""
    import logging

    import structlog
    from web3 import Web3

    from oracle.api.dashboard import dashboard_router
    from oracle.chain.client import OracleClient
    from oracle.settings import NodeSettings
    from oracle.worker.node import Node

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        settings = NodeSettings.load(config)
        node = Node.from_settings(settings)
        routers = []
        if dashboard:
            # Its own client: the node's loop owns (and may rotate) the node's RPC connection.
            w3 = Web3(Web3.HTTPProvider(settings.rpc_urls[0], request_kwargs={"timeout": settings.rpc_timeout}))
            routers.append(dashboard_router(OracleClient(w3, node.rpc.client.address),
                                            start_block=settings.default_start_block() or 0))
        node.serve(install_signals=True, extra_routers=routers)
    except OracleError as exc:
        raise _fail(exc) from None


@app.command()
def status(config: ConfigOpt = None) -> None:
    """Show the operator's balance, stake, credits and the local job counts."""
    from rich.console import Console
    from rich.table import Table

    try:
        settings, account, client = _ctx(config)
        st = client.stake_of(account.address)
        table = Table(title=f"operator {account.address}")
        table.add_column("item")
        table.add_column("value", justify="right")
        table.add_row("balance", _eth(client.w3.eth.get_balance(account.address)))
        table.add_row("stake", _eth(st.staked))
        table.add_row("locked in bonds", _eth(st.locked))
        table.add_row("unbonding", _eth(st.pending))
        table.add_row("credits", _eth(client.credits_of(account.address)))
        if settings.db_path.exists():
            from oracle.worker.db import Database

            db = Database(settings.db_path)
            for state, n in sorted(db.counts().items()):
                table.add_row(f"jobs {state}", str(n))
            cur = db.cursor()
            table.add_row("cursor block", str(cur[0]) if cur else "-")
            db.close()
        Console().print(table)
    except (OracleError, ValueError) as exc:
        raise _fail(exc) from None
