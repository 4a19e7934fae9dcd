"""The demo's other shipped model families: a CNN, gradient-boosted trees and a transformer, all EXACT.

Each is registered with the deployment, with the program shipped beside it in ``oracle/models/`` (as
``docs/dapp-guide.md`` registers them). The narration gives its family, accuracy (float network and integer
program on the held-out set), multiply-accumulates, program size and how a wrong answer would be proven: one
``challenge`` transaction, or, for the transformer, whose whole re-execution is over the 16,777,216-gas cap,
the dispute game (the registry accepts it as game-provable because the game is deployed). In act 2 a user asks
each model about one of its manifest samples (beside the digit requests, so the waits overlap); the honest
node binds the file to its program (one compile in a child process) and answers, and the answer read back from
the chain is compared with the sample's expected output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.types import Mode, ModelSpec, Status
from oracle.dispute.party import TX_GAS_CAP
from oracle.profile.models import model_entry, model_path, program_bytes
from oracle.profile.program import decode, macs

#: The shipped models this act registers, with the family the narration names.
SHIPPED = {
    "digits_cnn": "convolutional network, 8x8 digits",
    "credit_gbt": "gradient-boosted trees, credit risk (synthetic data)",
    "digits_transformer": "transformer encoder, 8x8 digits",
}


@dataclass
class ShippedRun:
    """One shipped model in the demo: what was registered, asked, expected and answered on-chain."""

    name: str
    model_id: int
    proof_gas: int
    registration_gas: int = 0  # its largest registration transaction: registerModel, or fixPlan before it
    request_id: int = 0
    expected: bytes = b""
    output: bytes = b""
    status: Status = Status.PENDING
    operator: str = ""

    @property
    def game_provable(self) -> bool:
        return self.proof_gas > TX_GAS_CAP

    @property
    def correct(self) -> bool:
        return self.status is Status.FINALIZED and self.output == self.expected


def register_shipped(console: Console, client: OracleClient, owner: str, fee: int, bond: int) -> list[ShippedRun]:
    """Registers every model of :data:`SHIPPED` as EXACT with its shipped program; one line each."""
    runs = []
    for name, family in SHIPPED.items():
        entry = model_entry(name)
        program = program_bytes(name)
        sample = entry["samples"][0]
        model_id = client.register_model(owner, ModelSpec(
            onnx_hash=bytes.fromhex(entry["onnx_keccak256"][2:]), fee=fee, bond=bond,
            input_length=len(bytes.fromhex(sample["input_hex"][2:])), output_length=entry["output_width"],
            mode=Mode.EXACT, uri=model_path(name).as_uri(),
            program_commitment=bytes.fromhex(entry["program_commitment"][2:])), program)
        run = ShippedRun(name, model_id, client.proof_gas_bound(model_id)[0], _registration_gas(client, model_id))
        proof = (f"the dispute game (one transaction would need {run.proof_gas / 1e6:.0f}M gas, "
                 f"{run.proof_gas / TX_GAS_CAP:.1f}x the cap)" if run.game_provable else
                 f"one transaction (at most {run.proof_gas / 1e6:.1f}M gas)")
        console.print(f"model #{model_id}: {name}, {family}, [bold]EXACT[/]: accuracy float "
                      f"{entry['float_accuracy']:.1%} / int {entry['int_accuracy']:.1%}, "
                      f"{macs(decode(program)):,} MACs, program {len(program):,} bytes")
        console.print(f"  a wrong answer is proven by {proof}; registration {run.registration_gas / 1e6:.1f}M gas"
                      + (f" [bold red]OVER the {TX_GAS_CAP:,}-gas cap: an EIP-7825 chain would refuse it[/]"
                         if run.registration_gas > TX_GAS_CAP else ""))
        runs.append(run)
    return runs


def _registration_gas(client: OracleClient, model_id: int) -> int:
    """Gas of the largest transaction that registered ``model_id``: ``registerModel`` (its program check
    included) or, for a game-provable model, the ``fixPlan`` that fixed its tile plan first."""
    logs = client.contract.events.ModelRegistered().get_logs(from_block=0, argument_filters={"modelId": model_id})
    game_address = client.contract.functions.DISPUTE_GAME().call()
    if int(game_address, 16):
        game = client.w3.eth.contract(address=game_address, abi=artifacts.load("DisputeGame").abi)
        key = game.functions.planKey(client.contract.functions.programChunks(model_id).call()).call()
        logs += game.events.PlanFixed().get_logs(from_block=0, argument_filters={"key": key})
    return max(int(client.w3.eth.get_transaction_receipt(log["transactionHash"])["gasUsed"]) for log in logs)


def ask_shipped(console: Console, client: OracleClient, user: str, runs: list[ShippedRun],
                watch: Callable[[int, str], int]) -> None:
    """A user asks each model about its first manifest sample; ``watch`` hands the request to the narrator
    and returns the number it is narrated under."""
    for run in runs:
        sample = model_entry(run.name)["samples"][0]
        run.expected = bytes.fromhex(sample["expected_output_hex"][2:])
        run.request_id, _ = client.request(user, run.model_id, bytes.fromhex(sample["input_hex"][2:]))
        shown = watch(run.request_id, run.name)
        console.print(f"  #{shown} a user asks {run.name} (model #{run.model_id}) about a shipped sample "
                      f"(label {sample['label']}); expected output 0x{run.expected.hex()}")


def report_answers(console: Console, client: OracleClient, runs: list[ShippedRun],
                   names: dict[str, str]) -> None:
    """Reads each request's submitted output back from the chain and prints it beside the expected one."""
    for run in runs:
        logs = client.contract.events.ResultSubmitted().get_logs(
            from_block=0, argument_filters={"requestId": run.request_id})
        if not logs:
            continue
        run.output = bytes(logs[-1]["args"]["output"])
        run.operator = names.get(logs[-1]["args"]["operator"], str(logs[-1]["args"]["operator"])[:10])
        verdict = "[green]as expected[/]" if run.output == run.expected else "[bold red]NOT the expected output[/]"
        console.print(f"  {run.name}: the {run.operator} operator's answer on-chain is 0x{run.output.hex()}, "
                      f"expected 0x{run.expected.hex()}: {verdict}")


def settle(client: OracleClient, runs: list[ShippedRun]) -> None:
    """Records each request's final status (after the story's last act)."""
    for run in runs:
        run.status = client.status_of(run.request_id)
