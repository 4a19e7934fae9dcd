"""One exception root for the whole package.

Every error the package raises on purpose derives from :class:`OracleError`; each domain has its own
subtree, and where it makes sense an error also subclasses the matching builtin so callers can catch
``ValueError`` or ``TimeoutError`` without knowing this package. Messages say what to do next.
"""

from __future__ import annotations


class OracleError(Exception):
    """Root of every error raised on purpose by the ``oracle`` package."""


class ConfigError(OracleError, ValueError):
    """Bad or missing configuration (settings file, environment, keystore)."""


class ToolchainError(OracleError, RuntimeError):
    """The Solidity toolchain (npm solc shim, anvil) is missing or broken."""


class ArtifactError(OracleError, RuntimeError):
    """Compiled contract artifacts are missing or stale."""


class ChainError(OracleError, RuntimeError):
    """A chain interaction failed (RPC, transaction, revert)."""


class TransientRpcError(ChainError):
    """The RPC endpoint failed in a way worth retrying (5xx, reset, timeout); the daemon backs off."""


class ContractRevert(ChainError):
    """A call or transaction reverted with a decoded custom error.

    ``name`` is the custom error's name (e.g. ``"ChallengeWindowClosed"``) and ``args`` its decoded
    arguments, so callers never compare 4-byte selectors by hand.
    """

    def __init__(self, name: str, args: tuple[object, ...] = (), raw: bytes = b"") -> None:
        self.name = name
        self.args_decoded = args
        self.raw = raw
        shown = ", ".join(repr(a) for a in args)
        super().__init__(f"contract reverted with {name}({shown})")


class ProfileError(OracleError, ValueError):
    """An ONNX graph or program is outside the integer profile (names the node and the reason)."""

    def __init__(self, reason: str, node: str | None = None) -> None:
        self.node = node
        self.reason = reason
        where = f"node {node!r}: " if node else ""
        super().__init__(f"{where}{reason}")


class ModelError(OracleError, ValueError):
    """A model file was refused (hash mismatch, external data, too large, unsupported op, corrupt)."""


class InferenceError(OracleError, RuntimeError):
    """Inference failed or exceeded its time or memory limit."""


class EncodingError(OracleError, ValueError):
    """Input or output bytes do not match a model's I/O spec."""
