"""Worker-specific errors (all under :class:`oracle.errors.OracleError`)."""

from __future__ import annotations

from oracle.errors import ChainError, OracleError, TransientRpcError

__all__ = ["ChainError", "WorkerError", "TransientRpcError", "NonceError"]


class WorkerError(OracleError, RuntimeError):
    """The worker cannot continue (misconfiguration found at run time); the message says what to fix."""


class NonceError(ChainError):
    """The account's nonce moved under the worker (another process uses the same key?)."""

