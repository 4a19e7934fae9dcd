"""A game-provable program's tile plan, fixed on the dispute game before its model registers.

A program whose one-transaction proof is over the cap registers only once the game holds its tile plan
(``DisputeGame.fixPlan``, docs/protocol.md §6 "Tiles"): the plan is a function of the program, computed
here (:func:`oracle.profile.tiles.plan`) and verified on-chain (``StepGasBound.checkPlan``) instead of
searched there. :func:`ensure_plan` fixes it when the game asks for it, so whoever registers through
:meth:`oracle.chain.client.OracleClient.register_model` (CLI, demo, SDK) never handles plans.
"""

from __future__ import annotations

from collections.abc import Sequence

from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from oracle.chain import artifacts
from oracle.chain.reverts import from_web3_error
from oracle.chain.tx import Signer, send
from oracle.errors import ChainError
from oracle.profile import tiles
from oracle.profile.program import decode

ZERO_ADDRESS = "0x" + "00" * 20


def packed_plan(program: bytes, cap: int) -> list[int]:
    """The tile plan of ``program`` (its bytes, as stored) under ``cap``, packed as ``fixPlan`` takes it."""
    p = decode(program)
    return tiles.packed(p, tiles.plan(p, cap, program_length=len(program)))


def ensure_plan(w3: Web3, oracle: Contract, signer: Signer, chunks: Sequence[str], program: bytes) -> TxReceipt | None:
    """Fixes the plan of the program stored in ``chunks`` if the oracle's dispute game needs it to register
    the program (its proof is over the cap and no plan is fixed); returns the ``fixPlan`` receipt, or None
    (no game, the program fits one transaction, the plan is fixed already, or the registration will
    report what is wrong with the program). Raises :class:`ChainError` if the game holds another plan for
    the program than the one every node and challenger uses (then no game on it could be played)."""
    address = oracle.functions.DISPUTE_GAME().call()
    if int(address, 16) == 0:
        return None
    game = w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifacts.load("DisputeGame").abi)
    fixed = bytes(game.functions.plans(game.functions.planKey(list(chunks)).call()).call()[0])
    plan = packed_plan(program, int(oracle.functions.TX_GAS_CAP().call()))
    if fixed != bytes(32):
        if fixed != Web3.solidity_keccak(["uint256[]"], [plan]):
            raise ChainError("the dispute game holds another tile plan for this program than oracle.profile.tiles "
                             "computes: do not register it on this deployment")
        return None
    try:
        game.functions.executionGasBound(list(chunks)).call()
        return None
    except ContractLogicError as exc:
        if from_web3_error(exc).name != "PlanNotFixed":
            return None
    return send(w3, game.functions.fixPlan(list(chunks), plan), signer)
