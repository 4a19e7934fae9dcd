"""The ``oracle`` command: one entry point for operators, challengers, model owners and the demo."""

from __future__ import annotations

import typer

from oracle.cli import chain_cmds, challenger_cmds, dispute_cmds, model_cmds, node_cmds

app = typer.Typer(help="Verifiable inference oracle: operators, challengers, model owners.", no_args_is_help=True)
app.add_typer(node_cmds.app, name="node")
app.add_typer(model_cmds.app, name="model")
app.add_typer(challenger_cmds.app, name="challenger")
app.add_typer(chain_cmds.app, name="chain")
app.add_typer(dispute_cmds.app, name="dispute")


@app.command()
def demo(
    window: int = typer.Option(8, help="challenge window in seconds"),
    cheats: int = typer.Option(3, help="requests sent while only the dishonest operator is up"),
    honest: int = typer.Option(4, help="requests sent with the honest operator up"),
) -> None:
    """Run the local devnet demo (same as `make demo`)."""
    from oracle.demo.story import main as demo_main

    raise typer.Exit(demo_main(["--window", str(window), "--cheats", str(cheats), "--honest", str(honest)]))


def main() -> None:
    app()
