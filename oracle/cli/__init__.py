"""The ``oracle`` command: one entry point for operators, challengers, model owners and the demo."""

from __future__ import annotations

import typer

from oracle.cli import account_cmds, chain_cmds, challenger_cmds, dispute_cmds, model_cmds, node_cmds
from oracle.cli.errors import OracleTyper

app = OracleTyper(help="Verifiable inference oracle: operators, challengers, model owners.", no_args_is_help=True)
app.add_typer(node_cmds.app, name="node")
app.add_typer(model_cmds.app, name="model")
app.add_typer(challenger_cmds.app, name="challenger")
app.add_typer(chain_cmds.app, name="chain")
app.add_typer(account_cmds.app, name="account")
app.add_typer(dispute_cmds.app, name="dispute")


@app.command()
def demo(
    window: int = typer.Option(8, help="challenge window in seconds"),
    cheats: int = typer.Option(3, help="requests sent while only the dishonest operator is up"),
    honest: int = typer.Option(4, help="requests sent with the honest operator up"),
    keep_running: bool = typer.Option(False, "--keep-running",
                                      help="after the story, keep the devnet, node and /try page up until Ctrl-C"),
) -> None:
    """Run the local devnet demo (same as `make demo`)."""
    from oracle.demo.story import main as demo_main

    argv = ["--window", str(window), "--cheats", str(cheats), "--honest", str(honest)]
    raise typer.Exit(demo_main(argv + (["--keep-running"] if keep_running else [])))


def main() -> None:
    app()
