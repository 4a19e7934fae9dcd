"""The devnet demo: the whole story on a local anvil, narrated.

    make demo            (python -m oracle.demo)

1. start anvil, deploy the verifier and the oracle, register the shipped digits model twice: as an
   `EXACT` integer program (fraud-provable) and as an `ATTESTED` float model;
2. stake an honest and a dishonest operator; deploy the example dApp (DigitMint);
3. the dApp asks for digit recognitions; the honest operator answers with onnxruntime, the dishonest one
   posts a wrong digit;
4. a challenger re-executes every EXACT result, proves the wrong one on-chain: slash, reward, burn, and the
   correct digit is delivered at once;
5. after the challenge window the honest results are finalized, the dApp's callback mints tokens;
6. a summary table, then everything started is stopped.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort
from rich.console import Console
from rich.table import Table
from web3 import Web3
from web3.logs import DISCARD

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.devnet import Devnet
from oracle.chain.tx import deploy, send
from oracle.chain.types import Mode, ModelSpec
from oracle.profile.models import model_bytes, model_entry, program_bytes
from oracle.profile.program import decode_tensor, encode_tensor

FEE = 10**15  # 0.001 ETH per inference
BOND = 4 * FEE
BURN = "0x000000000000000000000000000000000000dEaD"


@dataclass
class Ledger:
    gas: dict[str, list[int]] = field(default_factory=dict)
    requests: int = 0
    finalized: int = 0
    frauds: int = 0
    slashed: int = 0
    rewarded: int = 0
    burned: int = 0
    minted: int = 0

    def add_gas(self, step: str, used: int) -> None:
        self.gas.setdefault(step, []).append(used)


def run_digits(session: ort.InferenceSession, pixels: bytes, entry: dict) -> bytes:
    x = decode_tensor(pixels, entry["input_shape"], entry["input_width"])
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    return encode_tensor(np.asarray(y, dtype=np.int64), entry["output_width"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local devnet demo of the verifiable inference oracle.")
    parser.add_argument("--requests", type=int, default=6, help="digit recognitions the dApp asks for")
    parser.add_argument("--window", type=int, default=6, help="challenge window in seconds")
    args = parser.parse_args(argv)
    console = Console()
    ledger = Ledger()
    started = time.monotonic()

    console.rule("[bold]Verifiable inference oracle: devnet demo")
    with Devnet() as dev:
        w3 = Web3(Web3.HTTPProvider(dev.url))
        acct = w3.eth.accounts
        owner, honest, cheater, user, challenger = acct[0], acct[1], acct[2], acct[3], acct[4]
        console.print(f"anvil running at {dev.url} (chain {w3.eth.chain_id})")

        dep = deploy_system(w3, owner, DeployParams(challenge_window=args.window, request_timeout=300,
                                                    unbonding_period=3600))
        client = OracleClient(w3, dep.oracle)
        console.print(f"deployed oracle {dep.oracle}, verifier {dep.verifier}")

        entry = model_entry("digits")
        exact_id = client.register_model(owner, ModelSpec(
            onnx_hash=bytes.fromhex(entry["onnx_keccak256"][2:]), fee=FEE, bond=BOND, input_length=64,
            output_length=1, mode=Mode.EXACT, uri="file://oracle/models/digits.onnx",
            program_commitment=bytes.fromhex(entry["program_commitment"][2:])), program_bytes("digits"))
        fentry = model_entry("digits_float")
        attested_id = client.register_model(owner, ModelSpec(
            onnx_hash=bytes.fromhex(fentry["onnx_keccak256"][2:]), fee=FEE, bond=BOND, input_length=256,
            output_length=40, mode=Mode.ATTESTED, uri="file://oracle/models/digits_float.onnx"))
        console.print(f"registered digits as EXACT model #{exact_id} "
                      f"(program {entry['program_commitment'][:18]}…, {entry['program_size']} bytes on-chain) "
                      f"and the float digits model as ATTESTED model #{attested_id}")

        for op, label in ((honest, "honest"), (cheater, "dishonest")):
            client.stake(op, 10**18)
            console.print(f"{label} operator {op[:10]}… staked 1 ETH")

        art = artifacts.load("DigitMint")
        mint_addr = deploy(w3, art.abi, art.bytecode, owner, dep.oracle, exact_id, entry["output_width"])
        mint = w3.eth.contract(address=mint_addr, abi=art.abi)
        console.print(f"example dApp DigitMint at {mint_addr}: mints a token when the model agrees")

        session = ort.InferenceSession(model_bytes("digits"), providers=["CPUExecutionProvider"])
        samples = entry["samples"][: args.requests]
        console.rule("requests")
        jobs = []
        for i, sample in enumerate(samples):
            pixels = bytes.fromhex(sample["input_hex"][2:])
            receipt = send(w3, mint.functions.requestMint(int(sample["label"]), pixels), user, value=FEE)
            ledger.add_gas("request (via dApp)", receipt["gasUsed"])
            rid = client.contract.events.InferenceRequested().process_receipt(receipt, errors=DISCARD)[0][
                "args"]["requestId"]
            ledger.requests += 1
            jobs.append((rid, pixels, int(sample["label"])))
            console.print(f"request {i + 1}: user draws a {sample['label']} -> request {hex(rid)[:14]}…")

        console.rule("attestations")
        cheat_index = len(jobs) // 2
        for i, (rid, pixels, _) in enumerate(jobs):
            output = run_digits(session, pixels, entry)
            operator = honest
            if i == cheat_index:
                operator, output = cheater, bytes([(output[0] + 1) % 10])
            receipt = client.submit(operator, rid, output)
            ledger.add_gas("submit", receipt["gasUsed"])
            who = "dishonest" if operator == cheater else "honest"
            console.print(f"{who} operator attests digit {output[0]} for request {i + 1} (bond {BOND / 1e18} ETH locked)")

        console.rule("challenger re-executes every EXACT result")
        for i, (rid, pixels, _) in enumerate(jobs):
            attested = client.submitted_events(0, w3.eth.block_number)
            claimed = next(e.output for e in attested if e.request_id == rid)
            expected = run_digits(session, pixels, entry)
            if claimed == expected:
                continue
            burn_before = w3.eth.get_balance(BURN)
            receipt = client.challenge(challenger, rid, pixels)
            ledger.add_gas("challenge (on-chain re-execution)", receipt["gasUsed"])
            ev = client.events_in(receipt, "FraudProven")[0]
            ledger.frauds += 1
            ledger.slashed += BOND
            ledger.rewarded += ev["reward"]
            ledger.burned += w3.eth.get_balance(BURN) - burn_before
            console.print(f"[red]fraud proven[/] on request {i + 1}: claimed {claimed[0]}, re-execution gives "
                          f"{ev['correctOutput'][0]}; bond slashed, challenger credited {ev['reward'] / 1e18} ETH, "
                          f"{ev['burned'] / 1e18} ETH burned, correct digit delivered to the dApp")

        console.rule("challenge window")
        deadline = max(client.get_request(rid).submitted_at for rid, _, _ in jobs) + args.window
        while True:
            now = w3.eth.get_block("latest")["timestamp"]
            left = deadline - now
            if left <= 0:
                break
            console.print(f"window closes in {left}s …")
            time.sleep(min(1.0, left))
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

        console.rule("finalization")
        for i, (rid, pixels, _) in enumerate(jobs):
            if client.status_of(rid).name != "FINALIZABLE":
                continue
            output = run_digits(session, pixels, entry)
            receipt = client.finalize(honest, rid, output)
            ledger.add_gas("finalize (with dApp callback)", receipt["gasUsed"])
            ledger.finalized += 1
            ev = client.events_in(receipt, "RequestFinalized")[0]
            console.print(f"request {i + 1} finalized, operator paid, callback ok={ev['callbackSucceeded']}")
        ledger.minted = mint.functions.totalMinted().call()
        honest_stake = client.stake_of(honest)
        cheater_stake = client.stake_of(cheater)
        honest_credit = client.credits_of(honest)
        send(w3, client.withdraw_fn(honest), honest)

    table = Table(title="Demo summary")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("requests", str(ledger.requests))
    table.add_row("results finalized (honest)", str(ledger.finalized))
    table.add_row("frauds proven", str(ledger.frauds))
    table.add_row("slashed / rewarded / burned (ETH)",
                  f"{ledger.slashed / 1e18} / {ledger.rewarded / 1e18} / {ledger.burned / 1e18}")
    table.add_row("honest operator earned (ETH), stake left", f"{honest_credit / 1e18}, {honest_stake.staked / 1e18}")
    table.add_row("dishonest operator stake left (ETH)", f"{cheater_stake.staked / 1e18}")
    table.add_row("tokens minted by the dApp", str(ledger.minted))
    for step, used in ledger.gas.items():
        table.add_row(f"gas: {step}", f"{sum(used) // len(used):,}")
    table.add_row("time taken", f"{time.monotonic() - started:.1f}s")
    console.print(table)
    ok = ledger.frauds >= 1 and ledger.finalized == ledger.requests - ledger.frauds
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
