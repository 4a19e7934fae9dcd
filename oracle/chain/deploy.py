"""Deploy the whole system: the EXACT-mode verifier and the oracle (registry + staking + lifecycle)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from web3 import Web3

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.tx import Signer, address_of, deploy

VERIFIER_CONTRACT = "IntegerVerifier"


@dataclass(frozen=True)
class DeployParams:
    """Deployment parameters with production-minded defaults (all constructor arguments).

    - ``challenge_window``: 1 hour, far above validator timestamp drift, long enough for challengers to act
      early; a devnet demo uses seconds.
    - ``request_timeout``: 1 hour for an operator to answer before the requester can take the fee back.
    - ``exclusive_period``: 30 s (two or three blocks) after a request during which only its assignee (a staked
      operator drawn by free stake) may answer; then anyone staked may. 0 turns assignment off.
    - ``unbonding_period``: 7 days, far longer than window + dispute (v1 disputes are one transaction).
    - ``min_operator_stake``: 0.1 ETH, the stake an operator needs to be listed for assignment. Each draw
      takes a roster place uniformly (then accepts by free stake), so without a floor many 1-wei stakes would
      fill the roster and leave most requests unassigned, open to answer-copying again; with it that costs
      the attacker 0.1 ETH per account, locked for the unbonding period.
    - ``max_assignment_weight``: 32 ETH, the free stake above which an operator draws no more assignment
      weight (Ethereum's effective-balance cap, for the same reason). A draw accepts its operator with
      probability weight / the largest weight, so without a cap one 1,000 ETH stake next to twenty of
      10-100 ETH left about 2/3 of requests unassigned; an operator with more stake runs more operators.
    - ``min_bond_ratio``: 4, so bond >= 4 x fee: fraud never pays and a self-challenge always loses.
    - ``max_callback_gas``: 1,000,000, enough for real consumers, bounded so finalize stays cheap to call.
    - ``tx_gas_cap``: 16,777,216, Ethereum's per-transaction gas cap since Osaka (EIP-7825): every proof
      transaction (``challenge``, callback included) of every registered EXACT model fits it.
    - ``dispute_game``: also deploy the interactive dispute game (protocol §6 v2), so EXACT models whose
      one-transaction proof exceeds the cap but whose every game step fits are accepted (game-provable).
      On by default (the node defends and the challenger plays on their own); without it such models are
      refused (``ProofGasTooHigh``).
    - ``game_bond``: wei a challenger posts to open a game (the winner's); ``game_clock``: seconds each
      side has in total for its moves (chess clock); None: 24 hours, or less if the unbonding period
      requires it. The longest game is two full clocks, so ``unbonding_period >= challenge_window + 2 *
      game_clock`` is enforced (a game opened at the end of the window must end before unstaked funds go):
      on-chain by the game's constructor (``UnbondingTooShort``), and here first so nothing is deployed.
    """

    challenge_window: int = 3600
    request_timeout: int = 3600
    unbonding_period: int = 7 * 24 * 3600
    min_bond_ratio: int = 4
    max_callback_gas: int = 1_000_000
    tx_gas_cap: int = 16_777_216
    dispute_game: bool = True
    game_bond: int = 10**17
    game_clock: int | None = None
    exclusive_period: int = 30
    min_operator_stake: int = 10**17
    max_assignment_weight: int = 32 * 10**18

    def oracle_args(self, verifier: str, game: str) -> tuple[Any, ...]:
        """`InferenceOracle`'s constructor arguments, in its order (``game``: the dispute game it trusts, or
        the zero address)."""
        return (verifier, self.challenge_window, self.request_timeout, self.exclusive_period,
                self.unbonding_period, self.min_operator_stake, self.max_assignment_weight, self.min_bond_ratio,
                self.max_callback_gas, self.tx_gas_cap, game)

    def clock(self) -> int:
        """The game's clock: ``game_clock``, or the longest (up to 24 hours) the unbonding period allows."""
        if self.game_clock is not None:
            return self.game_clock
        return max(1, min(DEFAULT_GAME_CLOCK, (self.unbonding_period - self.challenge_window) // 2))


DEFAULT_GAME_CLOCK = 24 * 3600


@dataclass(frozen=True)
class Deployment:
    """Addresses of one deployment; saved as JSON so workers and the SDK can find it."""

    chain_id: int
    oracle: str
    verifier: str
    block: int
    params: DeployParams
    dispute_game: str = ""  # the DisputeGame's address ("" if none)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "params": asdict(self.params)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        data = json.loads(text)
        return cls(data["chain_id"], data["oracle"], data["verifier"], data["block"],
                   DeployParams(**data["params"]), data.get("dispute_game", ""))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        return cls.from_json(path.read_text())


def deploy_system(
    w3: Web3, signer: Signer, params: DeployParams | None = None, verifier: str | None = None
) -> Deployment:
    """Deploys the verifier (unless an existing ``verifier`` address is given) and the oracle."""
    params = params or DeployParams()
    if verifier is None:
        v = artifacts.load(VERIFIER_CONTRACT)
        verifier = deploy(w3, v.abi, v.bytecode, signer)
    o = artifacts.load("InferenceOracle")
    game = ZERO_ADDRESS
    clock = params.clock()
    if params.dispute_game and params.unbonding_period > params.challenge_window \
            and params.unbonding_period < params.challenge_window + 2 * clock:
        raise ValueError(f"unbonding_period {params.unbonding_period}s must be at least challenge_window + 2 x "
                         f"game_clock = {params.challenge_window + 2 * clock}s; lengthen it or shorten the clock")
    helpers: tuple[str, ...] = ()
    if params.dispute_game:
        # The game's two helper contracts (its tile plan and bound, its one-step prover), each its own
        # contract for the EIP-170 limit.
        helpers = tuple(deploy(w3, a.abi, a.bytecode, signer, *args) for a, args in (
            (artifacts.load("StepGasBound"), ()), (artifacts.load("OneStepProver"), (verifier,))))
        # The oracle trusts the game by an immutable address: the game is the signer's next deployment.
        sender = address_of(signer)
        nonce = w3.eth.get_transaction_count(Web3.to_checksum_address(sender), "pending")
        game = create_address(sender, nonce + 1)
    oracle = deploy(w3, o.abi, o.bytecode, signer, *params.oracle_args(verifier, game))
    if params.dispute_game:
        g = artifacts.load("DisputeGame")
        deployed = deploy(w3, g.abi, g.bytecode, signer, oracle, verifier, params.game_bond, clock, *helpers)
        if deployed != game:
            raise RuntimeError(f"dispute game deployed at {deployed}, the oracle trusts {game}")
    return Deployment(w3.eth.chain_id, oracle, verifier, w3.eth.block_number, params,
                      game if params.dispute_game else "")


ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def create_address(sender: str, nonce: int) -> str:
    """The address a CREATE by ``sender`` at ``nonce`` deploys to."""
    import rlp  # type: ignore[import-untyped]
    from eth_utils.conversions import to_bytes
    from eth_utils.crypto import keccak

    return Web3.to_checksum_address(keccak(rlp.encode([to_bytes(hexstr=sender), nonce]))[12:])


def client_for(w3: Web3, deployment: Deployment) -> OracleClient:
    return OracleClient(w3, deployment.oracle)
