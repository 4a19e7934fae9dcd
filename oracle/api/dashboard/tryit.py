"""Try-it: sends a digits request for a visitor, paid by a configured signer (devnets and demos).

Every request costs the signer the model's fee, so sends are serialized (one nonce owner) and rate-limited.
Use an account of its own, not the operator's: the worker owns the operator's nonce.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from oracle.chain.client import OracleClient
from oracle.chain.tx import Signer, address_of
from oracle.chain.types import Model
from oracle.errors import ContractRevert, OracleError


class TryError(OracleError):
    """A try-it request could not be sent; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Sent:
    request_id: int
    model: Model
    requester: str
    tx_hash: str
    block: int


class TryService:
    def __init__(
        self,
        client: OracleClient,
        signer: Signer,
        model_id: int,
        *,
        per_minute: int = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.signer = signer
        self.model_id = model_id
        self.requester = address_of(signer)
        self.per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()

    def model(self) -> Model:
        try:
            return self.client.get_model(self.model_id)
        except ContractRevert as exc:
            raise TryError(
                409,
                f"try-it model {self.model_id} is not registered on this oracle "
                f"({exc.name}); pass an existing try_model_id",
            ) from exc
        except Exception as exc:  # noqa: BLE001 - RPC down: say so, keep serving
            raise TryError(
                503, f"cannot read model {self.model_id}: {type(exc).__name__}: {str(exc)[:200]}"
            ) from exc

    def send(self, data: bytes) -> Sent:
        with self._lock:
            now = self._clock()
            while self._sent and now - self._sent[0] >= 60:
                self._sent.popleft()
            if len(self._sent) >= self.per_minute:
                raise TryError(
                    429,
                    f"try-it is limited to {self.per_minute} requests a minute; retry shortly",
                    retry_after=max(1, int(60 - (now - self._sent[0])) + 1),
                )
            model = self.model()
            if model.retired:
                raise TryError(
                    409, f"model {self.model_id} is retired; restart the dashboard with a live try_model_id"
                )
            if model.input_length != len(data):
                raise TryError(
                    409,
                    f"model {self.model_id} takes {model.input_length}-byte inputs, the try "
                    f"page draws {len(data)} pixels; use the digits model",
                )
            try:
                rid, receipt = self.client.request(self.signer, self.model_id, data, fee=model.fee)
            except ContractRevert as exc:
                raise TryError(409, f"the oracle refused the request: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 - RPC down, signer out of funds, ...: say so, keep serving
                raise TryError(
                    503, f"could not send the request: {type(exc).__name__}: {str(exc)[:200]}"
                ) from exc
            self._sent.append(now)
            return Sent(
                rid,
                model,
                self.requester,
                "0x" + bytes(receipt["transactionHash"]).hex(),
                int(receipt["blockNumber"]),
            )
