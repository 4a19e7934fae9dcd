"""The ``EXACT`` binding check (:func:`oracle.profile.binding.bind_exact`) in a sandbox child.

Compiling runs constant folding and the interval analysis over an untrusted file: a hostile file can ask for
terabytes or hours. :func:`bind_in_child` runs it in a fresh :class:`~oracle.runtime.sandbox.Sandbox` child
with an address-space and a wall-time limit; the caller (the worker's model store, the CLI) survives either
way and gets a :class:`~oracle.profile.binding.BindingError`: a refusal, a verdict on the file, or a
:class:`~oracle.profile.binding.BindingLimitExceeded` when the check did not finish (a timeout or a dead
child, which a frozen or overloaded machine produces too).

:func:`compile_and_bind` is the job the child runs (this module is the child's jobs module).
"""

from __future__ import annotations

from typing import Any

from oracle.profile.binding import BIND_MEMORY, BIND_TIMEOUT, Binding, BindingError, BindingLimitExceeded
from oracle.profile.program import commitment
from oracle.runtime.sandbox import Sandbox, SandboxFailure, SandboxLimits


def bind_in_child(onnx_bytes: bytes, *, program_commitment: bytes, input_length: int, output_length: int,
                  onchain_program: bytes | None = None, timeout: float = BIND_TIMEOUT,
                  memory_bytes: int = BIND_MEMORY) -> Binding:
    """:func:`~oracle.profile.binding.bind_exact` in a fresh limited child (one per check: a compile may
    leave a fragmented heap behind, and checks are rare)."""
    sandbox = Sandbox("oracle.runtime.binder", SandboxLimits(timeout=timeout, memory_bytes=memory_bytes),
                      name="oracle-binding")
    kwargs = dict(program_commitment=program_commitment, input_length=input_length, output_length=output_length,
                  onchain_program=onchain_program)
    try:
        kind, payload = sandbox.call("compile_and_bind", onnx_bytes, kwargs)
    except SandboxFailure as exc:
        if exc.kind == "timeout":
            raise BindingLimitExceeded(f"compiling the ONNX file exceeded the {timeout:.0f} s limit") from None
        if exc.kind == "memory":
            raise BindingError("compiling the ONNX file exceeded the compiler's memory limit") from None
        if exc.kind == "crash":
            raise BindingLimitExceeded(f"the compiler child died (exit code {sandbox.last_exit_code}); memory "
                                       "limit or a crash while compiling the ONNX file") from None
        raise BindingError(f"compiling the ONNX file failed: {exc.detail[:200]}") from None
    finally:
        sandbox.close()
    if kind != "ok":
        raise BindingError(str(payload))
    program_bytes = bytes(payload)
    if commitment(program_bytes) != program_commitment:  # never trust a child's bytes blindly
        raise BindingError("the compiler child returned a program that does not match the commitment")
    return Binding(program_bytes, program_commitment)


def compile_and_bind(onnx_bytes: bytes, kwargs: dict[str, Any]) -> tuple[str, bytes | str]:
    """In the child: ("ok", program bytes) or ("refused", why). Running out of memory is raised (the
    sandbox reports it as ``memory``)."""
    from oracle.profile.binding import bind_exact

    try:
        return "ok", bind_exact(onnx_bytes, **kwargs).program_bytes
    except BindingError as exc:
        return "refused", str(exc)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything else is a refusal, reported and never raised in the parent
        return "refused", f"compiling the ONNX file failed: {type(exc).__name__}: {str(exc)[:200]}"
