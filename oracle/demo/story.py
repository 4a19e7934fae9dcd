"""The demo's script: a dApp asks for digit recognitions, an honest and a dishonest operator answer, a
challenger proves the frauds, the other shipped model families (a CNN, gradient-boosted trees, a transformer)
answer a request each (:mod:`oracle.demo.models_act`), a wrong answer of a model too large for one transaction
is proven by the dispute game move by move (:mod:`oracle.demo.game_act`), results finalize, the dApp mints.
Narrated live; ends with a summary."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from web3 import Web3
from web3.logs import DISCARD
from web3.types import Wei

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.devnet import Devnet
from oracle.chain.tx import deploy, send
from oracle.chain.types import Mode, ModelSpec, Status
from oracle.demo.actors import CorruptingExecutor, dev_account, make_challenger, make_node
from oracle.demo.game_act import play_act
from oracle.demo.models_act import ask_shipped, register_shipped, report_answers, settle
from oracle.demo.report import Summary, print_summary
from oracle.dispute.party import TX_GAS_CAP
from oracle.profile.models import model_entry, model_path, program_bytes
from oracle.runtime.executor import ProcessExecutor

FEE = 10**15  # 0.001 ETH per inference
BOND = 4 * FEE
BURN = "0x000000000000000000000000000000000000dEaD"
EXCLUSIVE = 3  # seconds only a request's assignee may answer (a devnet demo; production default 30)


@dataclass
class Tracked:
    index: int
    label: str
    model: str
    status: Status = Status.PENDING
    operator: str = ""
    output: bytes = b""


@dataclass
class Narrator:
    """Watches the chain and prints each request's transitions as they happen."""

    console: Console
    client: OracleClient
    names: dict[str, str]
    window: int
    tracked: dict[int, Tracked] = field(default_factory=dict)
    last_countdown: float = 0.0

    def watch(self, rid: int, label: str, model: str) -> int:
        self.tracked[rid] = Tracked(len(self.tracked) + 1, label, model)
        return len(self.tracked)

    def poll(self) -> None:
        now = int(self.client.w3.eth.get_block("latest")["timestamp"])
        open_deadlines = []
        for rid, t in self.tracked.items():
            view = self.client.get_request(rid)
            if view.status == t.status:
                if view.status is Status.SUBMITTED:
                    open_deadlines.append(view.submitted_at + self.window - now)
                continue
            who = self.names.get(view.operator, view.operator[:10])
            if view.status in (Status.SUBMITTED, Status.FINALIZABLE) and t.status is Status.PENDING:
                logs = self.client.contract.events.ResultSubmitted().get_logs(
                    from_block=0, argument_filters={"requestId": rid})
                t.output = bytes(logs[-1]["args"]["output"]) if logs else b""
                t.operator = who
                shown = t.output[0] if t.model == "EXACT" and t.output else f"{len(t.output)} bytes"
                self.console.print(f"  #{t.index} attested by the [bold]{who}[/] operator: {shown}"
                                   f"  (challenge window {self.window}s opens, bond locked)")
            if view.status is Status.FRAUD_PROVEN:
                ev = self.client.contract.events.FraudProven().get_logs(
                    from_block=0, argument_filters={"requestId": rid})[-1]["args"]
                self.console.print(
                    f"  [bold red]#{t.index} FRAUD PROVEN[/]: the {t.operator or who} operator claimed "
                    f"{t.output[0] if t.output else '?'}, on-chain re-execution gives {ev['correctOutput'][0]}; "
                    f"bond {BOND / 1e18} ETH slashed, challenger +{ev['reward'] / 1e18} ETH, "
                    f"{ev['burned'] / 1e18} ETH burned, correct digit delivered to the dApp")
            elif view.status is Status.FINALIZED:
                self.console.print(f"  [green]#{t.index} finalized[/]: {t.operator or who} operator paid "
                                   f"{FEE / 1e18} ETH, dApp callback "
                                   f"{'ran' if view.callback_succeeded else 'not run (account requester)'}")
            t.status = view.status
        if open_deadlines and time.monotonic() - self.last_countdown > 2:
            self.last_countdown = time.monotonic()
            self.console.print(f"  … {len(open_deadlines)} result(s) in their challenge window, next closes in "
                               f"{max(min(open_deadlines), 0)}s")

    def all_final(self) -> bool:
        return all(t.status.is_final for t in self.tracked.values())

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if predicate():
                return
            time.sleep(0.3)
            self.client.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]  # keep time moving
        raise TimeoutError(f"demo: timed out waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local devnet demo of the verifiable inference oracle.")
    parser.add_argument("--window", type=int, default=8, help="challenge window in seconds")
    parser.add_argument("--cheats", type=int, default=3, help="requests sent while only the dishonest operator is up")
    parser.add_argument("--honest", type=int, default=4, help="requests sent with the honest operator up")
    parser.add_argument("--keep-running", action="store_true",
                        help="after the story, keep the devnet, the honest node, the challenger and the /try page "
                             "up until Ctrl-C (or SIGTERM), so a person can finish a drawing")
    args = parser.parse_args(argv)
    console = Console()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="oracle-demo-"))
    log_path = Path(tempfile.gettempdir()) / "oracle-demo.log"
    _quiet_logs(log_path)
    console.print(f"(component logs: {log_path})")
    cast: list[Any] = []
    try:
        with Devnet() as dev:
            try:
                summary = _story(console, dev, workdir, args, cast)
                summary.seconds = time.monotonic() - started
                ok = _report(console, summary)
                if args.keep_running:
                    _keep_running(console, dev, cast)
            finally:
                # Stop everything we started while the chain is still up, newest first.
                for actor in reversed(cast):
                    actor.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def _report(console: Console, summary: Summary) -> bool:
    print_summary(console, summary)
    ok = summary.frauds >= 1 and summary.honest_unfinalized == 0 and summary.wrong_finalized == 0 and \
        summary.game is not None and summary.game.slashed and summary.game.max_gas <= TX_GAS_CAP and \
        len(summary.shipped) == 3 and all(r.correct for r in summary.shipped)
    console.print("[bold green]demo complete[/]" if ok else "[bold red]demo failed its own checks[/]")
    return ok


def _keep_running(console: Console, dev: Devnet, cast: list[Any]) -> None:
    """Keeps the chain moving (a block a second, so challenge windows close) until Ctrl-C or SIGTERM."""
    import signal
    import threading

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    port = next((a.api_port for a in cast if getattr(a, "api_port", None)), None)
    console.print(f"[bold]still running[/] (--keep-running): draw a digit at http://127.0.0.1:{port}/try, "
                  f"dashboard http://127.0.0.1:{port}/dashboard, devnet {dev.url}; Ctrl-C stops everything")
    w3 = Web3(Web3.HTTPProvider(dev.url))
    try:
        while not stop.wait(1.0):
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]  # time moves, windows close
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print("stopping")


def _quiet_logs(path: Path) -> None:
    """Send the components' structured logs to a file so the narration stays readable."""
    import logging

    import structlog

    handle = path.open("w")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=handle),
                        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper("iso"),
                                    structlog.processors.JSONRenderer()])
    logging.basicConfig(stream=handle, level=logging.WARNING, force=True)


def _story(console: Console, dev: Devnet, workdir: Path, args: argparse.Namespace, cast: list[Any]) -> Summary:
    console.rule("[bold]Verifiable inference oracle: devnet demo")
    w3 = Web3(Web3.HTTPProvider(dev.url, request_kwargs={"timeout": 60}))
    accounts = list(w3.eth.accounts)
    owner, user = accounts[0], accounts[3]
    honest_acct, cheat_acct, chall_acct = dev_account(1), dev_account(2), dev_account(4)
    names = {honest_acct.address: "honest", cheat_acct.address: "dishonest"}
    console.print(f"anvil at {dev.url}, chain {w3.eth.chain_id}")

    dep = deploy_system(w3, owner, DeployParams(challenge_window=args.window, request_timeout=300,
                                                unbonding_period=3600, exclusive_period=EXCLUSIVE))
    client = OracleClient(w3, dep.oracle)
    console.print(f"deployed InferenceOracle {dep.oracle} and IntegerVerifier {dep.verifier}; each request is "
                  f"assigned by stake to one operator, alone allowed to answer for {EXCLUSIVE}s")
    digits = model_entry("digits")
    exact_id = client.register_model(owner, ModelSpec(
        onnx_hash=bytes.fromhex(digits["onnx_keccak256"][2:]), fee=FEE, bond=BOND, input_length=64,
        output_length=1, mode=Mode.EXACT, uri=model_path("digits").as_uri(),
        program_commitment=bytes.fromhex(digits["program_commitment"][2:])), program_bytes("digits"))
    floats = model_entry("digits_float")
    float_id = client.register_model(owner, ModelSpec(
        onnx_hash=bytes.fromhex(floats["onnx_keccak256"][2:]), fee=FEE, bond=BOND, input_length=256,
        output_length=40, mode=Mode.ATTESTED, uri=model_path("digits_float").as_uri()))
    console.print(f"model #{exact_id}: digits, [bold]EXACT[/] integer program ({digits['program_size']} bytes "
                  f"on-chain, commitment {digits['program_commitment'][:14]}…, accuracy "
                  f"{digits['int_accuracy']:.1%})")
    console.print(f"model #{float_id}: digits float network, [bold]ATTESTED[/] (stake-backed, no on-chain proof)")
    shipped = register_shipped(console, client, owner, FEE, BOND)
    for acct, label in ((honest_acct, "honest"), (cheat_acct, "dishonest")):
        w3.eth.send_transaction({"from": owner, "to": acct.address, "value": Wei(2 * 10**18)})
        client.stake(acct, 10**18)
        console.print(f"{label} operator {acct.address[:10]}… staked 1 ETH")
    art = artifacts.load("DigitMint")
    mint = w3.eth.contract(address=Web3.to_checksum_address(deploy(w3, art.abi, art.bytecode, owner, dep.oracle,
                                                                   exact_id, digits["output_width"])), abi=art.abi)
    console.print(f"dApp DigitMint at {mint.address}: mints a token only if the model recognises your digit")

    start = dep.block
    narrator = Narrator(console, client, names, args.window)
    cheat_exec = CorruptingExecutor(ProcessExecutor())
    cheater = make_node("dishonest", dev.url, dep.oracle, start, workdir, 2, executor=cheat_exec)
    challenger = make_challenger(client, workdir, start, chall_acct.address)
    cast += [cheater.start(), challenger.start()]
    console.print("the dishonest operator's worker and an independent challenger are running")

    samples = digits["samples"]
    receipts: dict[str, list[int]] = {"request (dApp)": []}

    def ask(sample: dict[str, Any]) -> int:
        pixels = bytes.fromhex(sample["input_hex"][2:])
        # The fee and DigitMint's callback gas at the SDK's committed price (twice the base fee).
        price = client.quote(exact_id, mint.functions.CALLBACK_GAS().call())
        receipt = send(w3, mint.functions.requestMint(int(sample["label"]), pixels), user, value=price)
        receipts["request (dApp)"].append(receipt["gasUsed"])
        rid = int(client.contract.events.InferenceRequested().process_receipt(receipt, errors=DISCARD)[0]["args"][
            "requestId"])
        narrator.watch(rid, str(sample["label"]), "EXACT")
        console.print(f"  #{len(narrator.tracked)} a user draws a {sample['label']} and asks DigitMint to mint it")
        return rid

    console.rule("act 1: only the dishonest operator is online")
    first = [ask(s) for s in samples[: args.cheats]]
    narrator.wait(lambda: all(narrator.tracked[r].status is not Status.PENDING for r in first), 60,
                  "the dishonest operator's answers")
    narrator.wait(lambda: sum(t.status is Status.FRAUD_PROVEN for t in narrator.tracked.values()) >= 1, 60,
                  "the challenger")
    cheater.node.pause()

    console.rule("act 2: the honest operator comes online and serves every model")
    honest = make_node("honest", dev.url, dep.oracle, start, workdir, 1)
    cast.append(honest.start(serve_api=True, extra_routers=_dashboard(client, start, w3, exact_id)))
    console.print(f"honest worker up; dashboard http://127.0.0.1:{honest.api_port}/dashboard, "
                  f"draw a digit at http://127.0.0.1:{honest.api_port}/try (while the demo runs; "
                  "--keep-running keeps it up afterwards)")
    second = [ask(s) for s in samples[args.cheats: args.cheats + args.honest]]
    pixels = np.frombuffer(bytes.fromhex(samples[0]["input_hex"][2:]), dtype=np.int8).astype(">f4")
    rid_float, receipt = client.request(user, float_id, pixels.tobytes())
    receipts.setdefault("request (account)", []).append(receipt["gasUsed"])
    narrator.watch(rid_float, samples[0]["label"], "ATTESTED")
    console.print(f"  #{len(narrator.tracked)} an account asks the ATTESTED float model directly")
    ask_shipped(console, client, user, shipped, lambda rid, name: narrator.watch(rid, name, "EXACT"))
    narrator.wait(lambda: all(narrator.tracked[r].status is not Status.PENDING for r in
                              second + [rid_float] + [r.request_id for r in shipped]), 120,
                  "the honest operator's answers")
    report_answers(console, client, shipped, names)

    console.rule("act 3: a model too large for one transaction, a wrong answer, the dispute game")
    game = play_act(console, w3, client, dep, owner, user, workdir, cast, FEE, BOND)

    console.rule("act 4: challenge windows close, results finalize")
    narrator.wait(narrator.all_final, 120, "every request to settle")
    summary = _summarize(w3, client, narrator, mint, receipts, honest_acct.address, cheat_acct.address,
                         chall_acct.address, cheat_exec)
    summary.game = game
    settle(client, shipped)
    summary.shipped = shipped
    return summary


def _dashboard(client: OracleClient, start: int, w3: Web3, model_id: int) -> list[Any]:
    """The dashboard and try-it pages. The dashboard gets its own client (the node owns its connection) and
    try-it sends from its own devnet account (the node owns the operator's nonces)."""
    from oracle.api.dashboard import dashboard_router

    own = OracleClient(Web3(Web3.HTTPProvider(w3.provider.endpoint_uri)), client.address)  # type: ignore[attr-defined]
    return [dashboard_router(own, start_block=start, try_signer=list(w3.eth.accounts)[5], try_model_id=model_id)]


def _summarize(w3: Web3, client: OracleClient, narrator: Narrator, mint: Any, receipts: dict[str, list[int]],
               honest: str, cheater: str, challenger: str, cheat_exec: Any) -> Summary:
    s = Summary()
    s.requests = len(narrator.tracked)
    tracked = narrator.tracked
    s.finalized = sum(t.status is Status.FINALIZED for t in tracked.values())
    s.frauds = sum(t.status is Status.FRAUD_PROVEN for t in tracked.values())
    s.corrupted = getattr(cheat_exec, "corrupted", 0)
    frauds = client.contract.events.FraudProven().get_logs(from_block=0)
    s.rewarded = sum(int(e["args"]["reward"]) for e in frauds)
    s.burned = sum(int(e["args"]["burned"]) for e in frauds)
    s.slashed = sum(int(e["args"]["amount"]) for e in client.contract.events.Slashed().get_logs(from_block=0))
    s.wrong_finalized = s.corrupted - s.frauds
    s.honest_unfinalized = sum(1 for t in tracked.values() if t.operator == "honest" and t.status is not
                               Status.FINALIZED)
    s.honest_stake = client.stake_of(honest).staked
    s.honest_credits = client.credits_of(honest)
    s.cheater_stake = client.stake_of(cheater).staked
    s.challenger_credits = client.credits_of(challenger)
    s.minted = int(mint.functions.totalMinted().call())
    s.gas = dict(receipts)
    s.gas.update(_gas_per_item(w3, client, "ResultSubmitted", "submit (per result, batched)"))
    s.gas.update(_gas_per_item(w3, client, "RequestFinalized", "finalize (per result, batched)"))
    s.gas.update(_gas_per_item(w3, client, "FraudProven", "challenge (re-execution on-chain)"))
    return s


def _gas_per_item(w3: Web3, client: OracleClient, event: str, label: str) -> dict[str, list[int]]:
    per_tx: dict[bytes, int] = {}
    for log in getattr(client.contract.events, event)().get_logs(from_block=0):
        per_tx[bytes(log["transactionHash"])] = per_tx.get(bytes(log["transactionHash"]), 0) + 1
    values = []
    for tx, n in per_tx.items():
        values += [int(w3.eth.get_transaction_receipt(tx)["gasUsed"]) // n] * n  # type: ignore[arg-type]
    return {label: values} if values else {}
