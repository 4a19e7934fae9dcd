"""The challenger: re-executes every attested `EXACT` result and proves wrong ones on-chain.

Pieces: :mod:`store` (SQLite state that survives restarts), :mod:`verify` (onnxruntime fast path, the
reference interpreter over the on-chain program as the arbiter), :mod:`daemon` (the watch / verify /
challenge loop), :mod:`metrics`.
"""
