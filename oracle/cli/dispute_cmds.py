"""``oracle dispute``: the interactive dispute games (docs/protocol.md, "Dispute game (v2)")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from web3 import Web3

from oracle.chain.deploy import Deployment
from oracle.cli.errors import OracleTyper
from oracle.dispute.party import game_contract
from oracle.dispute.status import game_status

app = OracleTyper(help="Interactive dispute games: status of a game.", no_args_is_help=True)


@app.command()
def status(
    game_id: Annotated[int, typer.Argument(help="Game id (GameOpened event).")],
    deployment: Annotated[Path, typer.Option()] = Path("deployment.json"),
    rpc: Annotated[str, typer.Option(envvar="ORACLE_RPC_URL")] = "http://127.0.0.1:8545",
) -> None:
    """Show a game's moves so far (interval, roots), clocks and who must act."""
    dep = Deployment.load(deployment)
    if not dep.dispute_game:
        typer.echo("error: this deployment has no dispute game", err=True)
        raise typer.Exit(1)
    try:
        game = game_contract(Web3(Web3.HTTPProvider(rpc)), dep.dispute_game)
        typer.echo(json.dumps(game_status(game, game_id), indent=2))
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
