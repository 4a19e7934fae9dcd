"""What the worker and the challenger both need to touch untrusted models, in one place.

- :mod:`~oracle.runtime.sandbox`: the one limited child process (wall time, memory, crash isolation,
  restart) every piece of untrusted work runs in;
- :mod:`~oracle.runtime.model_store`: fetch a registered model's ONNX file by URI, verify its keccak256,
  cache it by hash, bind ``EXACT`` files to their program (:mod:`~oracle.runtime.binder`, in a sandbox);
  :mod:`~oracle.runtime.model_checks` holds the file's own checks and the :class:`ModelInfo` they produce;
- :mod:`~oracle.runtime.executor`: run a verified model on canonical bytes in a sandbox with a per-input
  budget (:mod:`~oracle.runtime.inference` runs in the child: onnxruntime for ``ATTESTED``, the proven
  program's int64 path for ``EXACT``);
- :mod:`~oracle.runtime.codec`: the canonical I/O encodings (integers from :mod:`oracle.profile.codec`,
  float32).

Arrows: worker and challenger → runtime → {chain types, profile, errors}. Nothing here imports a daemon.
Submodules are imported where used (a sandbox child imports only its jobs module).
"""
