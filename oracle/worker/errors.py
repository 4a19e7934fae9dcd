"""Worker-specific errors (all under :class:`oracle.errors.OracleError`)."""

from __future__ import annotations

from oracle.errors import ChainError, InferenceError, ModelError, OracleError, TransientRpcError

__all__ = ["ChainError", "InferenceError", "InferenceTimeout", "ModelError", "NotRun", "WorkerError",
           "TransientRpcError", "NonceError"]


class WorkerError(OracleError, RuntimeError):
    """The worker cannot continue (misconfiguration found at run time); the message says what to fix."""


class NonceError(ChainError):
    """The account's nonce moved under the worker (another process uses the same key?)."""


class InferenceTimeout(InferenceError):
    """One input ran past its model's wall-time budget; the child was killed (a strike against the model)."""


class NotRun(InferenceError):
    """The input was not run because an earlier one in its call timed out; it costs its job no attempt."""
