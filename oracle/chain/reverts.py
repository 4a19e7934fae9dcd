"""Decode revert data into the contract's custom error, by name, from the shipped ABIs.

No 4-byte selector is ever written by hand: the table is built from every ``error`` entry of every
artifact, so Python code compares ``exc.name == "ChallengeWindowClosed"``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError

from oracle.chain.artifacts import _type_str, all_error_abis
from oracle.errors import ContractRevert


@lru_cache(maxsize=1)
def _selectors() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {}
    for item in all_error_abis():
        types = [_type_str(i) for i in item["inputs"]]
        sig = f"{item['name']}({','.join(types)})"
        table[keccak(text=sig)[:4]] = (item["name"], types)
    return table


def decode_revert_data(data: bytes | str | None) -> ContractRevert:
    """Turns raw revert data into a :class:`ContractRevert` carrying the error name and arguments."""
    raw = bytes(HexBytes(data)) if data else b""
    if len(raw) < 4:
        return ContractRevert("EmptyRevert", (), raw)
    sel = raw[:4]
    if sel == keccak(text="Error(string)")[:4]:
        (msg,) = abi_decode(["string"], raw[4:])
        return ContractRevert("Error", (msg,), raw)
    if sel == keccak(text="Panic(uint256)")[:4]:
        (code,) = abi_decode(["uint256"], raw[4:])
        return ContractRevert("Panic", (code,), raw)
    known = _selectors().get(sel)
    if known is None:
        return ContractRevert(f"UnknownError(0x{sel.hex()})", (), raw)
    name, types = known
    try:
        decoded = abi_decode(types, raw[4:])
        args: tuple[Any, ...] = tuple(
            to_checksum_address(v) if t == "address" else v for t, v in zip(types, decoded, strict=True)
        )
    except Exception:  # malformed arguments: keep the name, drop the args
        args = ()
    return ContractRevert(name, args, raw)


def from_web3_error(exc: ContractLogicError) -> ContractRevert:
    """Converts web3's ``ContractLogicError`` (and subclasses) into a decoded :class:`ContractRevert`."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and not data.startswith("0x"):
        data = None
    return decode_revert_data(data)
