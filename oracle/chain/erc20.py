"""The few ERC-20 calls the oracle's fee tokens need (balance, allowance, approve, metadata)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract

from oracle.chain.tx import Signer, address_of, send
from oracle.errors import ChainError

_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "balanceOf", "stateMutability": "view",
     "inputs": [{"name": "account", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "allowance", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "approve", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "symbol", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "string"}]},
    {"type": "function", "name": "decimals", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint8"}]},
]


def token(w3: Web3, address: str) -> Contract:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=_ABI)


def balance_of(w3: Web3, address: str, account: str) -> int:
    return int(token(w3, address).functions.balanceOf(Web3.to_checksum_address(account)).call())


def allowance(w3: Web3, address: str, owner: str, spender: str) -> int:
    fn = token(w3, address).functions.allowance(Web3.to_checksum_address(owner), Web3.to_checksum_address(spender))
    return int(fn.call())


def symbol(w3: Web3, address: str) -> str:
    """The token's symbol (printable characters only, at most 32: the token's owner chooses it), or its address
    when it has none."""
    try:
        text = str(token(w3, address).functions.symbol().call())
    except Exception:  # noqa: BLE001 - symbol() is optional in ERC-20
        text = ""
    text = "".join(c for c in text if c.isprintable())[:32].strip()
    return text or Web3.to_checksum_address(address)


@dataclass(frozen=True)
class TokenMeta:
    """How to show amounts of a fee token: its symbol (its address when it has none) and its decimals (0 when
    it declares none: amounts are then shown in base units)."""

    address: str
    symbol: str
    decimals: int


def metadata(w3: Web3, address: str) -> TokenMeta:
    """The token's ERC-20 metadata (both calls are optional in ERC-20; see :class:`TokenMeta`)."""
    fns = token(w3, address).functions
    try:
        decimals = int(fns.decimals().call())
    except Exception:  # noqa: BLE001 - decimals() is optional in ERC-20
        decimals = 0
    return TokenMeta(Web3.to_checksum_address(address), symbol(w3, address), decimals)


def ensure_allowance(w3: Web3, address: str, signer: Signer, spender: str, amount: int) -> None:
    """Approves `spender` for exactly `amount` when the signer's allowance is below it."""
    owner = address_of(signer)
    if allowance(w3, address, owner, spender) >= amount:
        return
    if balance_of(w3, address, owner) < amount:
        raise ChainError(f"{owner} holds less than {amount} of the fee token {address}: acquire some first")
    send(w3, token(w3, address).functions.approve(Web3.to_checksum_address(spender), amount), signer)
