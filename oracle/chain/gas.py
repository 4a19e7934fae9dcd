"""The gas limit a transaction is sent with, from its simulation's estimate: one formula for every sender.

An estimate is exact for the state it was simulated on; between the simulation and the block that includes
the transaction, an earlier transaction can change what this one touches (a slot written cold instead of
warm, an item of a batch settled by someone else, a callback's 63/64 forwarding on a deeper path). The
headroom covers that; unused gas is refunded, so a larger limit costs nothing but the balance it reserves.
"""

from __future__ import annotations

#: proportional headroom (+20 %) and a fixed one for the intrinsic and cold-access costs an estimate can miss
HEADROOM_PERCENT = 20
HEADROOM_FIXED = 50_000


def gas_limit(estimate: int) -> int:
    """The limit to send a transaction with, given ``estimate`` (``eth_estimateGas``) for it."""
    return estimate + estimate * HEADROOM_PERCENT // 100 + HEADROOM_FIXED
