"""Errors of the runtime (all under :class:`oracle.errors.OracleError`; the roots are ``ModelError`` and
``InferenceError`` there)."""

from __future__ import annotations

from oracle.errors import InferenceError, ModelError

__all__ = ["BindingRefused", "InferenceError", "InferenceTimeout", "ModelError", "NotRun"]


class InferenceTimeout(InferenceError):
    """One input ran past its model's wall-time budget; the child was killed (a strike against the model)."""


class NotRun(InferenceError):
    """The input was not run because an earlier one in its call timed out; it costs its job no attempt."""


class BindingRefused(ModelError):
    """An ``EXACT`` file is not bound to its registered program; final for this registration."""
