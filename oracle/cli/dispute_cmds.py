"""``oracle dispute``: the interactive dispute games (docs/protocol.md, "Dispute game (v2)")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from web3 import Web3

from oracle.chain import artifacts
from oracle.chain.deploy import Deployment
from oracle.cli.errors import OracleTyper
from oracle.dispute.actors import GameView

app = OracleTyper(help="Interactive dispute games: status of a game.", no_args_is_help=True)


def game_status(w3: Web3, game_address: str, game_id: int) -> dict[str, object]:
    """A game's state: phase, bisection interval, who must move and the seconds left on its clock."""
    game = w3.eth.contract(address=Web3.to_checksum_address(game_address), abi=artifacts.load("DisputeGame").abi)
    if not 0 < game_id <= game.functions.gameCount().call():
        raise ValueError(f"no game {game_id}")
    g = GameView.read(game, game_id)
    raw = game.functions.getGame(game_id).call()
    who, left = game.functions.toMove(game_id).call()
    out: dict[str, object] = {
        "game": game_id, "request_id": hex(g.request_id), "phase": g.phase.name,
        "challenger": g.challenger, "operator": g.operator, "lo": g.lo, "hi": g.hi,
        "challenger_clock_s": int(raw[3]), "operator_clock_s": int(raw[5]),
        "root_lo": "0x" + g.root_lo.hex(), "root_hi": "0x" + g.root_hi.hex(),
    }
    if g.phase.name == "RESOLVED":
        out["winner"] = "challenger" if g.challenger_won else "operator"
    else:
        out["to_move"] = "operator" if who == g.operator else "challenger"
        out["seconds_left"] = int(left)
    return out


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
        typer.echo(json.dumps(game_status(Web3(Web3.HTTPProvider(rpc)), dep.dispute_game, game_id), indent=2))
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
