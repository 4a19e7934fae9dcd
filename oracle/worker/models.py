"""Model store: fetch a registered model by URI, verify its keccak256 *before* parsing, cache by hash, refuse
dangerous or unsupported files.

Order of checks for a model (all failures raise :class:`ModelError` saying why):

1. Size cap while reading (a file over ``max_model_bytes`` is never fully read).
2. keccak256 of the bytes equals the registry's ``onnxHash`` (nothing parses unverified bytes).
3. Protobuf parse + ``onnx.checker`` (corrupt / truncated files).
4. No external data anywhere (initializers, sparse initializers, Constant attributes): external weight
   files are not covered by the hash and are a path-traversal vector.
5. Only known ops: the integer-profile op set for ``EXACT``; for ``ATTESTED`` any op with a registered
   schema in the default or ``ai.onnx.ml`` domain, and no subgraphs (control flow).
6. Static I/O shapes; every declared tensor and initializer under ``max_tensor_bytes``; exactly one input
   and one output, whose byte lengths under the canonical encoding (:mod:`oracle.worker.codec`) equal the
   registered ``inputLength`` / ``outputLength``.
7. ``EXACT`` only, the binding (:mod:`oracle.profile.binding`, in a child process with time and memory
   limits): the file compiles to exactly the registered ``programCommitment`` and, when the store has a
   ``program_reader``, to the bytes of the chain's program chunks; the file has no dead nodes, unused
   initializers or extra outputs. The proven program is stored as ``<model_dir>/<commitment>.program`` and
   the executor answers ``EXACT`` requests by running it (:class:`oracle.profile.binding.ProgramRunner`),
   never the ONNX file: the worker's answer is the program's answer by construction. Verdicts persist in
   ``verdicts`` (the worker's database) keyed by :data:`BindingKey`, so a restart does not compile again.

Sources, in order: the content-addressed cache ``<model_dir>/<hash>.onnx`` (re-verified), the registered URI
(``file://``, ``http://``, ``https://``, or ``cas://<hash>`` for the cache only), then each mirror's
``<base>/models/<hash>`` (the operator API serves it).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

import structlog
from eth_utils.crypto import keccak

from oracle.chain.types import Mode, Model
from oracle.profile.compiler import SUPPORTED_OPS
from oracle.worker import codec
from oracle.worker.errors import ModelError

log = structlog.get_logger("oracle.worker.models")

#: The integer profile's op set, as the compiler exports it (docs/integer-profile.md; Constant is folded).
EXACT_OPS = frozenset(SUPPORTED_OPS)
ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
CONTROL_FLOW = frozenset({"If", "Loop", "Scan", "SequenceMap"})
INT_TYPES = {2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 12: 4, 13: 8}  # onnx elem type -> bytes (uint8..uint64)
FLOAT32 = 1
REFUSAL_TTL = 60.0


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    elem_type: int  # onnx TensorProto elem type of the graph's tensor
    is_float: bool
    width: int  # bytes per element in the canonical encoding


@dataclass(frozen=True)
class ModelInfo:
    """A verified, validated model ready for the executor."""

    model_id: int
    mode: Mode
    onnx_hash: bytes
    path: Path
    input: TensorSpec
    output: TensorSpec
    #: EXACT: the proven program (keccak256 == ``program_commitment``) the executor runs instead of the file.
    program_path: Path | None = None
    program_commitment: bytes | None = None


#: (onnx keccak, registered program commitment, keccak of the chain's program chunks or b"", compiler version)
BindingKey = tuple[bytes, bytes, bytes, str]


class BindingVerdicts(Protocol):
    """Where binding verdicts persist across restarts (the worker's database), keyed by :data:`BindingKey`."""

    def binding_verdict(self, key: BindingKey) -> tuple[bool, str] | None: ...

    def record_binding(self, key: BindingKey, ok: bool, reason: str) -> None: ...


class BindingRefused(ModelError):
    """An EXACT file is not bound to its registered program (see step 7); final for this registration."""


def hash_hex(h: bytes) -> str:
    return "0x" + h.hex()


class ModelStore:
    """Fetches, verifies and caches models (thread-safe)."""

    def __init__(self, cache_dir: Path, *, max_model_bytes: int, max_tensor_bytes: int,
                 mirrors: tuple[str, ...] = (), fetch_timeout: float = 30.0,
                 program_reader: Callable[[Model], bytes] | None = None, bind_timeout: float = 120.0,
                 bind_memory_bytes: int = 2 * 1024**3, verdicts: BindingVerdicts | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        #: Persistent binding verdicts (None: every process compiles each EXACT file once).
        self.verdicts = verdicts
        #: EXACT files compiled by this store, and bindings answered from ``verdicts`` instead.
        self.compilations = 0
        self.verdict_hits = 0
        #: Reads the chain's program chunks of an EXACT model (the worker passes one; None skips that check).
        self.program_reader = program_reader
        self.bind_timeout = bind_timeout
        self.bind_memory_bytes = bind_memory_bytes
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.max_model_bytes = max_model_bytes
        self.max_tensor_bytes = max_tensor_bytes
        self.mirrors = tuple(m.rstrip("/") for m in mirrors)
        self.fetch_timeout = fetch_timeout
        self._ready: dict[tuple[int, bytes], ModelInfo] = {}
        self._refused: dict[tuple[int, bytes], tuple[float, ModelError]] = {}
        self._lock = threading.Lock()

    def cached_path(self, onnx_hash: bytes) -> Path:
        return self.cache_dir / f"{onnx_hash.hex()}.onnx"

    def ready(self, model: Model) -> ModelInfo | None:
        """Without any I/O: the model if it is ready, its :class:`ModelError` if it was refused lately, else
        None (then :meth:`get` has work to do: fetching, validating, binding)."""
        key = (model.model_id, model.onnx_hash)
        with self._lock:
            if key in self._ready:
                return self._ready[key]
            refused = self._refused.get(key)
            if refused and (refused[0] == float("inf") or time.monotonic() - refused[0] < REFUSAL_TTL):
                raise refused[1]
        return None

    def get(self, model: Model) -> ModelInfo:
        """The validated model, fetching it if needed; raises :class:`ModelError` (cached for a minute)."""
        key = (model.model_id, model.onnx_hash)
        info = self.ready(model)
        if info is not None:
            return info
        try:
            data = self._fetch(model)
            info = self._validate(model, data)
            if model.mode is Mode.EXACT:
                info = self._bind(model, data, info)
            if self.read_cached(model.onnx_hash) is None:
                self._store(model.onnx_hash, data)  # only validated files enter the cache
        except ModelError as exc:
            log.warning("model_refused", model_id=model.model_id, onnx_hash=hash_hex(model.onnx_hash),
                        reason=str(exc))
            with self._lock:
                # A binding refusal is a fact about immutable registry data: never retried in this process, so
                # a file built to compile slowly cannot make the node spend a compile every minute.
                permanent = isinstance(exc, BindingRefused)
                self._refused[key] = (float("inf") if permanent else time.monotonic(), exc)
            raise
        with self._lock:
            self._ready[key] = info
        log.info("model_ready", model_id=model.model_id, onnx_hash=hash_hex(model.onnx_hash), mode=model.mode.name)
        return info

    def program_path(self, program_commitment: bytes) -> Path:
        return self.cache_dir / f"{program_commitment.hex()}.program"

    def _bind(self, model: Model, data: bytes, info: ModelInfo) -> ModelInfo:
        """Prove the file computes the committed program (see the module docstring, step 7)."""
        from oracle.profile.binding import BindingError, BindingLimitExceeded, bind_in_child, compiler_version

        onchain = self.program_reader(model) if self.program_reader is not None else None
        key: BindingKey = (model.onnx_hash, model.program_commitment,
                           keccak(onchain) if onchain is not None else b"", compiler_version())
        cached = self._cached_binding(key, model)
        if cached is not None:
            return replace(info, program_path=cached, program_commitment=model.program_commitment)
        self.compilations += 1
        try:
            binding = bind_in_child(data, program_commitment=model.program_commitment,
                                    input_length=model.input_length, output_length=model.output_length,
                                    onchain_program=onchain, timeout=self.bind_timeout,
                                    memory_bytes=self.bind_memory_bytes)
        except BindingLimitExceeded as exc:
            # Not a fact about the file: a frozen or overloaded node times out too. Refused for REFUSAL_TTL only.
            raise ModelError(f"model {model.model_id}: binding check did not finish: {exc}; retried later") from None
        except BindingError as exc:
            reason = f"model {model.model_id}: refused, not bound to its program: {exc}"
            if self.verdicts is not None:
                self.verdicts.record_binding(key, False, reason)
            raise BindingRefused(reason) from None
        path = self.program_path(binding.commitment)
        try:
            current = path.read_bytes() if path.exists() else None
        except OSError:
            current = None
        if current != binding.program_bytes:
            self._write_atomic(path, binding.program_bytes)
        if self.verdicts is not None:
            self.verdicts.record_binding(key, True, "")
        return replace(info, program_path=path, program_commitment=binding.commitment)

    def _cached_binding(self, key: BindingKey, model: Model) -> Path | None:
        """The proven program's path when a persisted verdict says the file is bound (and the program file is
        still intact); raises :class:`BindingRefused` for a persisted refusal; None: compile."""
        verdict = self.verdicts.binding_verdict(key) if self.verdicts is not None else None
        if verdict is None:
            return None
        ok, reason = verdict
        if not ok:
            self.verdict_hits += 1
            raise BindingRefused(reason)
        path = self.program_path(model.program_commitment)
        try:
            intact = keccak(path.read_bytes()) == model.program_commitment
        except OSError:
            intact = False
        if intact:
            self.verdict_hits += 1
        return path if intact else None

    def read_cached(self, onnx_hash: bytes) -> bytes | None:
        """Bytes of a cached model after re-checking its hash (for serving it to others)."""
        path = self.cached_path(onnx_hash)
        try:
            if path.stat().st_size > self.max_model_bytes:
                return None
            data = path.read_bytes()
        except OSError:
            return None
        return data if keccak(data) == onnx_hash else None

    # ------------------------------------------------------------------ fetching
    def _fetch(self, model: Model) -> bytes:
        errors: list[str] = []
        cached = self.read_cached(model.onnx_hash)
        if cached is not None:
            return cached
        for source in self._sources(model):
            try:
                data = self._read_source(source)
            except ModelError as exc:
                errors.append(f"{source}: {exc}")
                continue
            digest = keccak(data)
            if digest != model.onnx_hash:
                errors.append(f"{source}: keccak256 {hash_hex(digest)} does not match the registered "
                              f"{hash_hex(model.onnx_hash)} (file changed or wrong URI)")
                continue
            return data
        raise ModelError(f"model {model.model_id}: no source produced the registered file; "
                         + "; ".join(errors or ["no usable source"]))

    def _sources(self, model: Model) -> list[str]:
        out = [u.strip() for u in model.uri.split(",") if u.strip()]
        out += [f"{m}/models/{hash_hex(model.onnx_hash)}" for m in self.mirrors]
        return out

    def _read_source(self, uri: str) -> bytes:
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            return self._read_file(Path(unquote(parsed.path)))
        if parsed.scheme in ("http", "https"):
            return self._read_http(uri)
        if parsed.scheme == "cas":
            raise ModelError("not in the local content-addressed cache")
        raise ModelError(f"unsupported URI scheme {parsed.scheme!r} (use file://, http(s)://, or a mirror)")

    def _read_file(self, path: Path) -> bytes:
        try:
            size = path.stat().st_size
            if size > self.max_model_bytes:
                raise ModelError(f"file is {size} bytes, over the {self.max_model_bytes}-byte cap")
            with path.open("rb") as fh:
                data = fh.read(self.max_model_bytes + 1)
        except OSError as exc:
            raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if len(data) > self.max_model_bytes:
            raise ModelError(f"file is over the {self.max_model_bytes}-byte cap")
        return data

    def _read_http(self, uri: str) -> bytes:
        import httpx

        buf = bytearray()
        try:
            with httpx.stream("GET", uri, timeout=self.fetch_timeout, follow_redirects=True) as resp:
                if resp.status_code != 200:
                    raise ModelError(f"HTTP {resp.status_code}")
                for chunk in resp.iter_bytes():
                    buf += chunk
                    if len(buf) > self.max_model_bytes:
                        raise ModelError(f"download is over the {self.max_model_bytes}-byte cap")
        except httpx.HTTPError as exc:
            raise ModelError(f"download failed: {exc}") from exc
        return bytes(buf)

    def _store(self, onnx_hash: bytes, data: bytes) -> None:
        self._write_atomic(self.cached_path(onnx_hash), data)

    def _write_atomic(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    # ------------------------------------------------------------------ validation
    def validate(self, model: Model, data: bytes) -> ModelInfo:
        """Checks 3 to 6 of the module docstring on bytes already in hand (the CLI, before registering)."""
        return self._validate(model, data)

    def _validate(self, model: Model, data: bytes) -> ModelInfo:
        import onnx
        from google.protobuf.message import DecodeError

        try:
            proto = onnx.load_from_string(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"model {model.model_id}: not a valid ONNX file (corrupt or truncated): {exc}") from exc
        _refuse_external_data(model.model_id, proto)
        try:
            onnx.checker.check_model(proto)
        except Exception as exc:  # noqa: BLE001 - onnx raises several types
            raise ModelError(f"model {model.model_id}: ONNX checker refused the file: {exc}") from exc
        graph = proto.graph
        for node in graph.node:
            self._check_node(model, node)
        for init in graph.initializer:
            self._check_tensor_size(model.model_id, init.name, list(init.dims), init.data_type)
        for s in graph.sparse_initializer:
            self._check_tensor_size(model.model_id, s.values.name, list(s.dims), s.values.data_type)
        init_names = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in init_names]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise ModelError(f"model {model.model_id}: needs exactly one input and one output tensor "
                             f"(has {len(inputs)} inputs, {len(graph.output)} outputs); export a single output "
                             "(e.g. skl2onnx with zipmap=False and only the label or the probabilities)")
        spec_in = self._tensor_spec(model, inputs[0], model.input_length, "input")
        spec_out = self._tensor_spec(model, graph.output[0], model.output_length, "output")
        return ModelInfo(model.model_id, model.mode, model.onnx_hash, self.cached_path(model.onnx_hash),
                         spec_in, spec_out)

    def _check_node(self, model: Model, node: object) -> None:
        import onnx

        n: onnx.NodeProto = node  # type: ignore[assignment]
        where = f"model {model.model_id}: node {n.name or n.op_type!r}"
        if n.domain not in ALLOWED_DOMAINS:
            raise ModelError(f"{where}: custom op domain {n.domain!r} is not supported")
        if model.mode is Mode.EXACT and n.op_type not in EXACT_OPS:
            raise ModelError(f"{where}: op {n.op_type} is not in the integer profile")
        if n.op_type in CONTROL_FLOW or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                             for a in n.attribute):
            raise ModelError(f"{where}: control flow / subgraphs are not supported")
        if not onnx.defs.has(n.op_type, n.domain):
            raise ModelError(f"{where}: unknown op {n.op_type!r}")
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                self._check_tensor_size(model.model_id, n.name, list(a.t.dims), a.t.data_type)

    def _check_tensor_size(self, model_id: int, name: str, dims: list[int], elem_type: int) -> None:
        n = 1
        for d in dims:
            if d < 0:
                raise ModelError(f"model {model_id}: tensor {name!r} has a negative dimension")
            n *= d
        size = n * max(INT_TYPES.get(elem_type, 8), 4 if elem_type == FLOAT32 else 1)
        if size > self.max_tensor_bytes:
            raise ModelError(f"model {model_id}: tensor {name!r} is {size} bytes, over the "
                             f"{self.max_tensor_bytes}-byte cap")

    def _tensor_spec(self, model: Model, vi: object, length: int, what: str) -> TensorSpec:
        import onnx

        v: onnx.ValueInfoProto = vi  # type: ignore[assignment]
        tt = v.type.tensor_type
        if not v.type.HasField("tensor_type"):
            raise ModelError(f"model {model.model_id}: {what} {v.name!r} is not a tensor")
        dims: list[int] = []
        for d in tt.shape.dim:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                raise ModelError(f"model {model.model_id}: {what} {v.name!r} has a dynamic shape; the canonical "
                                 "encoding needs static shapes (fix the batch dimension to 1)")
            dims.append(int(d.dim_value))
        self._check_tensor_size(model.model_id, v.name, dims, tt.elem_type)
        if tt.elem_type == FLOAT32:
            if model.mode is Mode.EXACT:
                raise ModelError(f"model {model.model_id}: EXACT models have integer I/O only")
            width, is_float = codec.FLOAT_WIDTH, True
        elif tt.elem_type in INT_TYPES:
            is_float = False
            try:
                width = codec.int_width(length, dims)
            except ValueError as exc:
                raise ModelError(f"model {model.model_id}: registered {what} length does not match the graph: "
                                 f"{exc}") from exc
        else:
            raise ModelError(f"model {model.model_id}: {what} element type {tt.elem_type} is not supported "
                             "(int8..int64 or float32)")
        if codec.numel(tuple(dims)) * width != length:
            raise ModelError(f"model {model.model_id}: registered {what} length {length} != "
                             f"{codec.numel(tuple(dims))} elements x {width} bytes")
        return TensorSpec(v.name, tuple(dims), tt.elem_type, is_float, width)


def _refuse_external_data(model_id: int, proto: object) -> None:
    import onnx

    p: onnx.ModelProto = proto  # type: ignore[assignment]

    def bad(t: onnx.TensorProto) -> bool:
        return t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data) > 0

    tensors: list[onnx.TensorProto] = list(p.graph.initializer)
    tensors += [s.values for s in p.graph.sparse_initializer] + [s.indices for s in p.graph.sparse_initializer]
    for node in p.graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                tensors.append(a.t)
            tensors.extend(a.tensors)
    for t in tensors:
        if bad(t):
            raise ModelError(f"model {model_id}: tensor {t.name!r} uses external data; external weight files "
                             "are not covered by the registered hash and are refused (embed the weights)")
