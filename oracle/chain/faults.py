"""Which chain failures are worth a retry: the one test every daemon's retries and broadcasts go through."""

from __future__ import annotations

import requests
from web3.exceptions import BlockNotFound, TimeExhausted, Web3RPCError

from oracle.errors import TransientRpcError


def is_transient(exc: BaseException) -> bool:
    """True for failures of the transport or the node that a retry may fix."""
    if isinstance(exc, (TransientRpcError, requests.RequestException, ConnectionError, TimeoutError,
                        TimeExhausted, BlockNotFound)):
        return True
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, Web3RPCError):
        msg = str(exc).lower()
        return any(s in msg for s in ("header not found", "timeout", "busy", "try again", "rate limit",
                                      "unavailable", "internal"))
    # web3 wraps non-JSON bodies (an HTML 502 page) in ValueError / JSONDecodeError
    return isinstance(exc, ValueError) and any(s in str(exc).lower() for s in ("json", "decode", "502", "503"))
