"""Model store: fetch a registered model by URI, verify its keccak256 *before* parsing, cache by hash, refuse
dangerous or unsupported files.

Order of checks for a model (all failures raise :class:`ModelError` saying why):

1. Size cap while reading (a file over ``max_model_bytes`` is never fully read).
2. keccak256 of the bytes equals the registry's ``onnxHash`` (nothing parses unverified bytes).
3.-6. The file's own checks (:mod:`oracle.runtime.model_checks`): a valid ONNX file, no external data, only
   known ops, static I/O shapes whose canonical byte lengths are the registered ones, tensors under
   ``max_tensor_bytes``.
7. ``EXACT`` only, the binding (:mod:`oracle.profile.binding`, in a sandbox child with time and memory
   limits, :mod:`oracle.runtime.binder`): the file compiles to exactly the registered
   ``programCommitment`` and, when the store has a ``program_reader``, to the bytes of the chain's program
   chunks; the file has no dead nodes, unused initializers or extra outputs. The proven program is stored
   as ``<model_dir>/<commitment>.program`` and the executor answers ``EXACT`` requests by running it
   (:class:`oracle.profile.binding.ProgramRunner`), never the ONNX file: the worker's answer is the
   program's answer by construction. Verdicts persist in ``verdicts`` (the worker's database) keyed by
   :data:`BindingKey`, so a restart does not compile again.

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
from dataclasses import replace
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

import structlog
from eth_utils.crypto import keccak

from oracle.chain.types import Mode, Model
from oracle.errors import ModelError
from oracle.runtime import binder
from oracle.runtime.errors import BindingRefused
from oracle.runtime.model_checks import ModelInfo, check_model

log = structlog.get_logger("oracle.runtime.model_store")

REFUSAL_TTL = 60.0


#: (onnx keccak, registered program commitment, keccak of the chain's program chunks or b"", compiler version)
BindingKey = tuple[bytes, bytes, bytes, str]


class BindingVerdicts(Protocol):
    """Where binding verdicts persist across restarts (the worker's database), keyed by :data:`BindingKey`."""

    def binding_verdict(self, key: BindingKey) -> tuple[bool, str] | None: ...

    def record_binding(self, key: BindingKey, ok: bool, reason: str) -> None: ...


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
            data = self.fetch(model)
            info = self.validate(model, data)
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
        from oracle.profile.binding import BindingError, BindingLimitExceeded, compiler_version

        onchain = self.program_reader(model) if self.program_reader is not None else None
        key: BindingKey = (model.onnx_hash, model.program_commitment,
                           keccak(onchain) if onchain is not None else b"", compiler_version())
        cached = self._cached_binding(key, model)
        if cached is not None:
            return replace(info, program_path=cached, program_commitment=model.program_commitment)
        self.compilations += 1
        try:
            binding = binder.bind_in_child(data, program_commitment=model.program_commitment,
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
    def fetch(self, model: Model) -> bytes:
        """The registered file's bytes (keccak256 checked), from the cache or the first source that has them."""
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
        """Checks 3 to 6 (:mod:`oracle.runtime.model_checks`) on bytes already in hand (the CLI, before
        registering; the challenger's audit child)."""
        return check_model(model, data, path=self.cached_path(model.onnx_hash),
                           max_tensor_bytes=self.max_tensor_bytes)
