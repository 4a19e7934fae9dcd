"""The ``oracle`` command: one entry point for operators, challengers, model owners and the demo."""

from __future__ import annotations

import typer

from oracle.cli import chain_cmds, challenger_cmds, model_cmds, node_cmds

app = typer.Typer(help="Verifiable inference oracle: operators, challengers, model owners.", no_args_is_help=True)
app.add_typer(node_cmds.app, name="node")
app.add_typer(model_cmds.app, name="model")
app.add_typer(challenger_cmds.app, name="challenger")
app.add_typer(chain_cmds.app, name="chain")


@app.command()
def demo(requests: int = 6, window: int = 6) -> None:
    """Run the local devnet demo (same as `make demo`)."""
    from oracle.demo import main as demo_main

    raise typer.Exit(demo_main(["--requests", str(requests), "--window", str(window)]))


def main() -> None:
    app()
