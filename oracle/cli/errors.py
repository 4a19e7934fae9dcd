"""One place where every ``oracle`` command turns an exception into one line that says what to do.

Every sub-command app is an :class:`OracleTyper`, whose ``command()`` wraps the callback in
:func:`translate_errors`: a failure prints ``error: <what happened>; <what to do>`` on stderr and exits with
code 1 (2 for configuration), never a traceback (``ORACLE_DEBUG=1`` re-raises for a developer). Messages are
scrubbed of secrets (the values of the secret ``ORACLE_*`` environment variables) before
they are printed, whatever raised them.

The pre-flight checks the commands share live here too: :func:`check_rpc` (is the endpoint a URL, does it
answer), :func:`check_port` (is the API port free) and :func:`load_deployment`.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import socket
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import click
import typer
from eth_account.signers.local import LocalAccount

from oracle.errors import ConfigError, OracleError

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S")

#: The account the running command sends from, so "insufficient funds" can name it (see :func:`acting_as`).
_SENDER: ContextVar[str | None] = ContextVar("oracle_cli_sender", default=None)

#: Environment variables whose values are secrets: never echoed, whatever the message.
SECRET_ENV = ("ORACLE_PRIVATE_KEY", "ORACLE_CHALLENGER_PRIVATE_KEY", "ORACLE_ADMIN_KEY",
              "ORACLE_KEYSTORE_PASSWORD")
_RPC_HINT = "start a node (devnet: `oracle chain devnet`) or fix --rpc / ORACLE_RPC_URL(S)"


class CliError(OracleError):
    """A failure with a message already written for the person at the terminal."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _is_secret_name(name: str) -> bool:
    return name.startswith("ORACLE_") and not name.endswith(("_ENV", "_PATH", "_FILE")) and any(
        w in name for w in ("PRIVATE_KEY", "ADMIN_KEY", "PASSWORD", "SECRET", "MNEMONIC"))


def _secret_values() -> list[tuple[str, str]]:
    names = set(SECRET_ENV) | {k for k in os.environ if _is_secret_name(k)}
    return [(n, os.environ[n]) for n in sorted(names) if len(os.environ.get(n, "")) >= 8]


def scrub(text: str) -> str:
    """``text`` without the values of secret environment variables (with or without their 0x)."""
    for name, value in _secret_values():
        text = text.replace(value, f"<${name}>")
        if value.lower().startswith("0x") and len(value) > 10:
            text = re.sub(re.escape(value[2:]), f"<${name}>", text, flags=re.IGNORECASE)
    return text


def one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _url_of(exc: BaseException) -> str | None:
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if url:
        return str(url)
    m = re.search(r"host='([^']+)', port=(\d+)", str(exc))
    return f"{m.group(1)}:{m.group(2)}" if m else None


def _walk(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def explain(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code for ``exc`` (secrets not yet scrubbed)."""
    import requests

    chain = _walk(exc)
    for e in chain:
        if isinstance(e, CliError):
            return str(e), e.code
    for e in chain:
        if isinstance(e, requests.exceptions.InvalidSchema | requests.exceptions.MissingSchema
                      | requests.exceptions.InvalidURL | requests.exceptions.URLRequired):
            return (f"malformed RPC URL ({one_line(str(e), 120)}); give an http(s)://host:port URL with --rpc or "
                    "ORACLE_RPC_URL(S)", 2)
        if isinstance(e, requests.exceptions.Timeout):
            return f"the RPC endpoint {_url_of(e) or ''} timed out; {_RPC_HINT}", 1
        if isinstance(e, requests.exceptions.ConnectionError):
            return f"cannot reach the RPC endpoint {_url_of(e) or ''}; {_RPC_HINT}", 1
    text = " ".join(str(e) for e in chain)
    low = text.lower()
    if "insufficient funds" in low or "insufficientfunds" in low or "lack of funds" in low:
        who = _SENDER.get()
        return (f"the account {who + ' ' if who else ''}has not enough ETH for this transaction (value + gas); "
                f"fund it first (devnet: `oracle chain fund {who or 'ADDRESS'}`)", 1)
    for e in chain:
        if isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
            return (f"address already in use ({one_line(str(e), 120)}); stop the other process or pick another "
                    "port", 1)
        if isinstance(e, FileNotFoundError):
            return f"no such file: {e.filename}", 2
        if isinstance(e, PermissionError):
            return f"permission denied: {e.filename}", 2
    if isinstance(exc, ConfigError):
        return str(exc), 2
    if isinstance(exc, OracleError):
        return str(exc), 1
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"{detail} (ORACLE_DEBUG=1 shows the traceback)", 1


def translate_errors(fn: F) -> F:
    """Runs a command; any exception becomes one scrubbed line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.ClickException, click.exceptions.Exit):
            raise
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the one place exceptions become messages
            if os.environ.get("ORACLE_DEBUG"):
                raise
            message, code = explain(exc)
            typer.echo(f"error: {one_line(scrub(message))}", err=True)
            raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]


class OracleTyper(typer.Typer):
    """A ``typer.Typer`` whose every command runs under :func:`translate_errors`."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(fn: F) -> F:
            register(translate_errors(fn))
            return fn

        return decorator


def acting_as(signer: S) -> S:
    """Records the account a command sends from (for the "not enough ETH" message); returns ``signer``."""
    _SENDER.set(str(getattr(signer, "address", signer)))
    return signer


# ---------------------------------------------------------------- pre-flight checks shared by the commands
def check_rpc(url: str, timeout: float = 10.0) -> Any:
    """A connected ``Web3`` for ``url``, or a :class:`CliError` saying what is wrong with it."""
    from web3 import Web3

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise CliError(f"malformed RPC URL {url!r}; give an http(s)://host:port URL with --rpc or "
                       "ORACLE_RPC_URL(S)", 2)
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
    try:
        w3.eth.chain_id  # noqa: B018 - one cheap call that every JSON-RPC node answers
    except Exception as exc:  # noqa: BLE001 - any failure here means the endpoint is not usable
        message, _ = explain(exc)
        if "RPC endpoint" not in message:
            message = f"the RPC endpoint {url} does not answer JSON-RPC ({one_line(str(exc), 120)}); {_RPC_HINT}"
        raise CliError(message) from None
    return w3


def check_port(host: str, port: int, what: str) -> None:
    """Refuses a port another process listens on, before anything starts."""
    if not port:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(f"port {port} on {host} is already in use, so the {what} cannot start; stop the "
                               "other process or choose another port") from None
            raise


def load_deployment(path: Path) -> Any:
    """The deployment file, or a message saying how to get one."""
    from oracle.chain.deploy import Deployment

    if not path.exists():
        raise CliError(f"deployment file {path} does not exist; run `oracle chain deploy --out {path}` first "
                       "or pass --deployment FILE", 2)
    try:
        return Deployment.load(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise CliError(f"{path} is not a deployment file written by `oracle chain deploy` "
                       f"({type(exc).__name__}: {one_line(str(exc), 120)})", 2) from None


def signer_from_key(key: str, env: str) -> LocalAccount:
    """A ``LocalAccount`` for a hex key, or a message that names the variable and never echoes the key."""
    from eth_account import Account

    try:
        account: LocalAccount = Account.from_key(key.strip())
        return account
    except Exception:  # noqa: BLE001 - whatever the parser says would echo part of the key
        raise CliError(f"{env} is not a private key: expected 0x followed by 64 hex digits", 2) from None
