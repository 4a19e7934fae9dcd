"""``oracle account ...``: create an encrypted keystore for an operator or a challenger, show its address.

The password comes from an environment variable (``ORACLE_KEYSTORE_PASSWORD`` by default), as everywhere
else: it is never typed on a command line (shell history) or read from a file in the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from eth_account import Account

from oracle.cli.errors import CliError, OracleTyper

app = OracleTyper(help="Encrypted keystores for operators and challengers.", no_args_is_help=True)

PasswordEnv = Annotated[str, typer.Option(help="Environment variable holding the keystore password.")]


@app.command()
def new(
    out: Annotated[Path, typer.Option("--out", "-o", help="Keystore file to write (refuses to overwrite).")],
    password_env: PasswordEnv = "ORACLE_KEYSTORE_PASSWORD",
) -> None:
    """Create a new random account, write it encrypted to OUT (mode 0600) and print its address."""
    password = os.environ.get(password_env)
    if not password:
        raise CliError(f"set {password_env} to the new keystore's password first", 2)
    if out.exists():
        raise CliError(f"{out} already exists; a keystore is never overwritten (choose another --out)", 2)
    acct = Account.create()
    blob = Account.encrypt(acct.key, password)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(blob, f)
    typer.echo(acct.address)


@app.command()
def address(keystore: Annotated[Path, typer.Argument(help="Keystore file.")]) -> None:
    """Print the address of a keystore (read from the file; no password needed)."""
    if not keystore.is_file():
        raise CliError(f"keystore {keystore} does not exist", 2)
    try:
        raw = json.loads(keystore.read_text())["address"]
    except (ValueError, KeyError, TypeError):
        raise CliError(f"{keystore} is not a keystore file with an address", 2) from None
    from web3 import Web3

    typer.echo(Web3.to_checksum_address(raw if str(raw).startswith("0x") else "0x" + str(raw)))
