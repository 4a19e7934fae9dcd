"""What ``oracle chain register`` proves before it spends gas: the URI is a URI, the file is a model a worker
will accept, and for ``EXACT`` the file compiles to exactly the program being committed.

The registry cannot relate an ONNX file to a program (it never sees the file), so a mismatched pair would be
registered and every honest operator who served it would lose its bond. Workers refuse such a model
(:mod:`oracle.profile.binding`); the CLI refuses to create one. Every check raises :class:`RegistrationError`
with a one-line message that says what to fix.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from eth_utils.crypto import keccak

from oracle.chain.types import Mode, Model
from oracle.errors import OracleError

URI_SCHEMES = ("file", "http", "https", "cas")
_HASH = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


class RegistrationError(OracleError, ValueError):
    """The model would be refused by workers (or is not what the owner meant to register)."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (protobuf and onnx errors span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def check_uri(uri: str, onnx_hash: bytes) -> None:
    """Each comma-separated source must be a ``file://``, ``http(s)://`` or ``cas://<keccak>`` URI."""
    parts = [u.strip() for u in uri.split(",")]
    if not uri.strip() or any(not p for p in parts):
        raise RegistrationError(f"--uri {uri!r} has an empty source; give file://, http(s):// or cas:// URIs "
                                "separated by commas")
    for part in parts:
        if any(c.isspace() or ord(c) < 0x20 for c in part):
            raise RegistrationError(f"--uri source {part!r} contains whitespace or control characters; "
                                    "percent-encode it")
        parsed = urlparse(part)
        if parsed.scheme not in URI_SCHEMES:
            raise RegistrationError(f"--uri source {part!r} is not a URI workers can fetch; use one of "
                                    + ", ".join(f"{s}://" for s in URI_SCHEMES))
        if parsed.scheme in ("http", "https") and not parsed.hostname:
            raise RegistrationError(f"--uri source {part!r} has no host (e.g. https://models.example/m.onnx)")
        if parsed.scheme == "file" and (parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/")
                                        or parsed.path.endswith("/")):
            raise RegistrationError(f"--uri source {part!r} must be an absolute file path (file:///path/m.onnx)")
        if parsed.scheme == "cas":
            digest = parsed.netloc + parsed.path
            if not _HASH.match(digest) or bytes.fromhex(digest.removeprefix("0x")) != onnx_hash:
                raise RegistrationError(f"--uri source {part!r} must be cas://0x<keccak256 of the file> "
                                        f"(0x{onnx_hash.hex()})")


def check_model(onnx_file: Path, data: bytes, *, input_length: int, output_length: int, uri: str,
                program_file: Path | None, program_bytes: bytes | None) -> None:
    """Refuses what a worker would refuse, and for EXACT a file that is not bound to ``program_bytes``."""
    from oracle.errors import ModelError
    from oracle.runtime.model_store import ModelStore

    onnx_hash = keccak(data)
    check_uri(uri, onnx_hash)
    mode = Mode.EXACT if program_bytes is not None else Mode.ATTESTED
    if input_length <= 0 or output_length <= 0:
        raise RegistrationError("--input-length and --output-length must be positive byte counts")
    commitment = keccak(program_bytes) if program_bytes is not None else b"\x00" * 32
    program = None
    if program_bytes is not None:
        from oracle.profile.codec import numel
        from oracle.profile.program import decode

        assert program_file is not None
        try:
            program = decode(program_bytes)
        except OracleError as exc:
            raise RegistrationError(f"{program_file.name} is not a program file ({one_line(exc)}); build it with "
                                    f"`oracle model compile {onnx_file.name} -o {program_file.name}`") from None
        for what, shape, width, length in (
                ("input", program.input_shape, program.input_width, input_length),
                ("output", program.output_shape, program.output_width, output_length)):
            if numel(shape) * width != length:
                raise RegistrationError(f"{program_file.name} takes {numel(shape) * width} {what} bytes "
                                        f"({list(shape)} x {width}), but --{what}-length is {length}")
        _check_same_io(onnx_file, data, program_file, program.input_shape, program.output_shape)
    model = Model(0, "0x" + "00" * 20, False, mode, 0, 0, input_length, output_length, onnx_hash, commitment, uri)
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(Path(tmp), max_model_bytes=64 * 2**20, max_tensor_bytes=16 * 2**20)
        try:
            store.validate(model, data)
        except ModelError as exc:
            raise RegistrationError(f"{onnx_file.name}: {one_line(exc).removeprefix('model 0: ')}") from None
    if program is None:
        _check_loads_in_onnxruntime(onnx_file, data)
        return
    assert program_file is not None
    from oracle.profile.binding import BindingError
    from oracle.runtime.binder import bind_in_child

    try:
        bind_in_child(data, program_commitment=commitment, input_length=input_length, output_length=output_length)
    except BindingError as exc:
        raise RegistrationError(f"{onnx_file.name} is not bound to {program_file.name}: {one_line(exc)}; "
                                f"recompile with `oracle model compile {onnx_file.name}`") from None


def _check_same_io(onnx_file: Path, data: bytes, program_file: Path, in_shape: tuple[int, ...],
                   out_shape: tuple[int, ...]) -> None:
    """The clearest sign of a mismatched pair: the file and the program do not even take the same tensors."""
    import onnx

    try:
        graph = onnx.load_model_from_string(data).graph
    except Exception:  # noqa: BLE001 - not ONNX at all: the model store check below says so
        return
    inits = {t.name for t in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        return  # the model store check below names the problem

    def dims(vi: onnx.ValueInfoProto) -> list[int]:
        return [int(d.dim_value) for d in vi.type.tensor_type.shape.dim]

    if dims(inputs[0]) != list(in_shape) or dims(graph.output[0]) != list(out_shape):
        raise RegistrationError(f"{onnx_file.name} maps {dims(inputs[0])} -> {dims(graph.output[0])} but "
                                f"{program_file.name} maps {list(in_shape)} -> {list(out_shape)}: the file and "
                                "the program are different models")


def _check_loads_in_onnxruntime(onnx_file: Path, data: bytes) -> None:
    import onnxruntime as ort

    from oracle.runtime.inference import session_options

    try:
        ort.InferenceSession(data, sess_options=session_options(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception family
        raise RegistrationError(f"{onnx_file.name}: onnxruntime cannot load it ({one_line(exc)[:300]})") from None
