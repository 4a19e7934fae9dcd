"""Fast, deterministic access to a real anvil for the stateful fuzzer.

web3.py costs milliseconds per call and polls receipts; at 10,000+ steps that dominates. This module talks
JSON-RPC directly: one round trip per transaction (``evm_setNextBlockTimestamp`` + anvil's
``eth_sendTransactionSync``, which returns the mined receipt) and one batched round trip for all the state
the invariants read. Every transaction carries an explicit block timestamp, so a run is a pure function of
the hypothesis seed (no wall clock), and gas price 0 (anvil started with ``--base-fee 0``), so every ETH
balance is exactly predictable. Reverts are decoded by custom-error name from the shipped ABIs
(``oracle.chain.reverts``), via ``debug_traceTransaction``.

``deploy_fuzz_system`` deploys the oracle (optionally a patched variant compiled into a temporary artifact,
see ``tests/invariants/mutants.py``), registers the two fuzzed models and a retired one, deploys the test
consumers and stakes the operators. It runs once per session; examples reset with ``evm_snapshot`` /
``evm_revert``.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from oracle.chain import artifacts
from oracle.chain.artifacts import _type_str
from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams
from oracle.chain.reverts import decode_revert_data
from oracle.chain.tx import deploy, send
from oracle.chain.types import Mode, ModelSpec
from oracle.profile import program, reference
from oracle.profile.models import model_entry, program_bytes

# ---------------------------------------------------------------- deployment parameters

WINDOW = 600  # challenge window (s)
TIMEOUT = 900  # request timeout (s)
EXCLUSIVE = 60  # exclusive period of a request's assignee (s)
UNBONDING = 1_800  # > WINDOW: pending stake outlives every dispute; short so withdrawals happen in a run
MIN_BOND_RATIO = 4
MIN_OPERATOR_STAKE = 2 * 10**16  # listed for assignment from here: some fuzzed stakes and unstakes cross it
MAX_ASSIGNMENT_WEIGHT = 4 * 10**16  # free stake above it draws no more weight: the initial 5e16 stake is over it
MAX_CALLBACK_GAS = 1_000_000
TX_GAS_CAP = 16_777_216
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

ATT_FEE, ATT_BOND = 10**15, 4 * 10**15
# Different fee/bond on the EXACT model so a bug that reads the wrong model's economics shows up.
EXACT_FEE, EXACT_BOND = 2 * 10**15, 10**16
#: The token model's fee, in base units of the test token (18 decimals): not comparable with the ETH bond.
TOKEN_FEE = 3 * 10**18
UNKNOWN_MODEL = 77

#: Gas for ordinary transactions; challenges re-execute the model and get more; batches carry several callbacks.
GAS = 3_000_000
GAS_CHALLENGE = 8_000_000
GAS_BATCH = 12_000_000
#: Outer gas that cannot give a 200k+ callback its full gas (the 63/64 rule check must revert).
GAS_STARVED = 150_000

BURN_ADDRESS = to_checksum_address("0x000000000000000000000000000000000000dead")

#: Override the oracle's artifact (a JSON with "abi" and "bytecode"), e.g. a seeded mutant.
ORACLE_ARTIFACT_ENV = "ORACLE_FUZZ_ORACLE_ARTIFACT"


class RpcError(RuntimeError):
    """The node answered a JSON-RPC call with an error (not a revert: reverts are receipts)."""


class Rpc:
    """Minimal JSON-RPC client with batching over one keep-alive HTTP connection (TCP_NODELAY, request
    head and body in one write: no Nagle / delayed-ACK stalls on loopback)."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urlsplit(url)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._conn: http.client.HTTPConnection | None = None
        self._id = 0
        self.round_trips = 0

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=120)
            conn.connect()
            assert conn.sock is not None
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def _post(self, body: bytes) -> Any:
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request("POST", "/", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    raise RpcError(f"HTTP {resp.status}: {data[:200]!r}")
                return json.loads(data)
            except (ConnectionError, http.client.HTTPException):
                self._conn = None  # the node closed an idle keep-alive connection: reconnect once
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def call(self, method: str, params: list[Any]) -> Any:
        return self.batch([(method, params)])[0]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        payload = []
        for method, params in calls:
            self._id += 1
            payload.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        first = self._id - len(calls) + 1
        self.round_trips += 1
        out: list[Any] = [None] * len(calls)
        for item in self._post(json.dumps(payload).encode()):
            if "error" in item:
                idx = item["id"] - first
                raise RpcError(f"{calls[idx][0]} failed: {item['error']}")
            out[item["id"] - first] = item["result"]
        return out


# ---------------------------------------------------------------- ABI helpers (selectors come from the ABI)


def _sig(item: dict[str, Any]) -> str:
    return item["name"] + "(" + ",".join(_type_str(i) for i in item["inputs"]) + ")"


@dataclass(frozen=True)
class Fn:
    """One function of an ABI: calldata encoder and return-data decoder."""

    name: str
    selector: bytes
    in_types: tuple[str, ...]
    out_types: tuple[str, ...]

    def data(self, *args: Any) -> str:
        return "0x" + (self.selector + abi_encode(list(self.in_types), list(args))).hex()

    @functools.lru_cache(maxsize=65_536)  # noqa: B019 - Fn objects live as long as the session
    def cached_data(self, *args: Any) -> str:
        """``data`` for hashable arguments, memoised: the per-step state reads repeat the same calls."""
        return self.data(*args)

    def decode(self, hexdata: str) -> tuple[Any, ...]:
        return tuple(abi_decode(list(self.out_types), bytes.fromhex(hexdata[2:])))


@dataclass(frozen=True)
class EventAbi:
    name: str
    topic0: bytes
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]


class Abi:
    """Functions by name and events by topic of one contract ABI (no overloads in this project)."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.fns: dict[str, Fn] = {}
        self.events: dict[bytes, EventAbi] = {}
        for item in abi:
            if item.get("type") == "function":
                self.fns[item["name"]] = Fn(
                    item["name"], keccak(text=_sig(item))[:4],
                    tuple(_type_str(i) for i in item["inputs"]), tuple(_type_str(o) for o in item["outputs"]),
                )
            elif item.get("type") == "event":
                topic = keccak(text=_sig(item))
                self.events[topic] = EventAbi(
                    item["name"], topic,
                    tuple((i["name"], _type_str(i)) for i in item["inputs"] if i["indexed"]),
                    tuple((i["name"], _type_str(i)) for i in item["inputs"] if not i["indexed"]),
                )

    def __getattr__(self, name: str) -> Fn:
        try:
            return self.__dict__["fns"][name]
        except KeyError:
            raise AttributeError(name) from None

    def decode_log(self, log: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        if not topics or topics[0] not in self.events:
            return None
        ev = self.events[topics[0]]
        args: dict[str, Any] = {}
        for (name, typ), topic in zip(ev.indexed, topics[1:], strict=True):
            (args[name],) = abi_decode([typ], topic)
        values = abi_decode([t for _, t in ev.data], bytes.fromhex(log["data"][2:]))
        for (name, _), v in zip(ev.data, values, strict=True):
            args[name] = v
        for k, v in args.items():
            if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
                args[k] = to_checksum_address(v)
        return ev.name, args


# ---------------------------------------------------------------- transactions


def _int(v: int | str) -> int:
    """Quantities come as hex strings, except anvil's receipt ``blockTimestamp`` (a number)."""
    return v if isinstance(v, int) else int(v, 16)


@dataclass
class TxResult:
    ok: bool
    error: str | None  # custom error name when reverted
    error_args: tuple[Any, ...]
    events: list[tuple[str, dict[str, Any]]]  # decoded oracle events, in order
    gas_used: int
    timestamp: int
    receipt: dict[str, Any]


class FuzzChain:
    """Time-controlled transaction sender. ``last_ts`` is the latest block's timestamp (what views see);
    the next transaction lands at ``next_ts``."""

    def __init__(self, rpc: Rpc, oracle: str, oracle_abi: Abi) -> None:
        self.rpc = rpc
        self.oracle = oracle
        self.oracle_abi = oracle_abi
        self.last_ts = 0
        self.next_ts = 0
        self.txs = 0
        self.tx_seconds = 0.0
        self.sync_time()

    def sync_time(self) -> None:
        block = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        self.last_ts = int(block["timestamp"], 16)
        self.next_ts = self.last_ts + 1

    def send(self, sender: str, to: str | None, data: str = "0x", *, value: int = 0, gas: int = GAS) -> TxResult:
        ts = self.next_ts
        tx: dict[str, Any] = {"from": sender, "data": data, "value": hex(value), "gas": hex(gas), "gasPrice": "0x0"}
        if to is not None:
            tx["to"] = to
        t0 = time.perf_counter()
        _, receipt = self.rpc.batch([("evm_setNextBlockTimestamp", [ts]), ("eth_sendTransactionSync", [tx])])
        self.tx_seconds += time.perf_counter() - t0
        self.txs += 1
        self.last_ts, self.next_ts = ts, ts + 1
        if _int(receipt["blockTimestamp"]) != ts:
            raise AssertionError(f"transaction landed at {receipt['blockTimestamp']}, expected {ts}")
        events = []
        for log in receipt["logs"]:
            if to_checksum_address(log["address"]) == self.oracle:
                decoded = self.oracle_abi.decode_log(log)
                if decoded is not None:
                    events.append(decoded)
        ok = int(receipt["status"], 16) == 1
        error, error_args = None, ()
        if not ok:
            trace = self.rpc.call("debug_traceTransaction", [receipt["transactionHash"], {"tracer": "callTracer"}])
            rev = decode_revert_data(trace.get("output"))
            error, error_args = rev.name, rev.args_decoded
        return TxResult(ok, error, error_args, events, int(receipt["gasUsed"], 16), ts, receipt)

    def warp(self, target: int) -> None:
        """Arranges for the next transaction to land exactly at ``target`` (if it is in the future); views
        in between see ``target - 1`` (an empty block is mined there)."""
        if target - 1 > self.last_ts:
            self.rpc.batch([("evm_setNextBlockTimestamp", [target - 1]), ("evm_mine", [])])
            self.last_ts = target - 1
        self.next_ts = max(target, self.last_ts + 1)

    def snapshot(self) -> str:
        return str(self.rpc.call("evm_snapshot", []))

    def revert(self, snap: str) -> None:
        if self.rpc.call("evm_revert", [snap]) is not True:
            raise RpcError(f"evm_revert({snap}) failed")
        self.sync_time()


# ---------------------------------------------------------------- the deployed system


@dataclass
class Actors:
    owner: str
    honest: list[str]
    dishonest: list[str]
    poor: str  # an operator with no initial stake
    requesters: list[str]
    challengers: list[str]
    forcer: str
    stranger: str

    @property
    def operators(self) -> list[str]:
        return self.honest + self.dishonest + [self.poor]

    @property
    def eoas(self) -> list[str]:
        return [self.owner, *self.operators, *self.requesters, *self.challengers, self.forcer, self.stranger]


@dataclass
class FuzzSystem:
    """Everything deployed once per session; every example starts from ``base_snapshot``."""

    url: str
    rpc: Rpc
    oracle: str
    abi: Abi
    consumer_abi: dict[str, Abi]
    consumers: dict[str, str]  # kind -> address
    actors: Actors
    att_model: int
    exact_model: int
    retired_model: int
    token_model: int  # the digits EXACT model again, its fee in `token` (requested by EOAs, which approved it)
    token: str
    token_abi: Abi
    initial_stake: dict[str, int]
    exact_samples: list[tuple[bytes, bytes]]  # (input, reference output)
    force_sender_bytecode: str
    oracle_artifact: str  # "shipped" or the override path
    base_snapshot: str = ""
    stats: dict[str, Any] = field(default_factory=dict)  # counters of the current run (see the test)


CONSUMER_KINDS = ("RecordingConsumer", "RevertingConsumer", "GasHungryConsumer", "ReentrantConsumer")


def _oracle_artifact() -> tuple[list[dict[str, Any]], str, str]:
    override = os.environ.get(ORACLE_ARTIFACT_ENV)
    if override:
        data = json.loads(Path(override).read_text())
        return artifacts.oracle_abi(data["abi"]), data["bytecode"], override
    art = artifacts.load("InferenceOracle")
    return artifacts.oracle_abi(art.abi), art.bytecode, "shipped"


def deploy_fuzz_system(url: str) -> FuzzSystem:
    """Deploys and configures the system on the devnet at ``url`` (web3 is fine here: it runs once)."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    acc = list(w3.eth.accounts)
    actors = Actors(
        owner=acc[0], honest=[acc[1], acc[2]], dishonest=[acc[3], acc[4]], poor=acc[5],
        requesters=[acc[6], acc[7]], challengers=[acc[8], acc[9]], forcer=acc[10], stranger=acc[11],
    )
    verifier_art = artifacts.load("IntegerVerifier")
    verifier = deploy(w3, verifier_art.abi, verifier_art.bytecode, actors.owner)
    abi, bytecode, source = _oracle_artifact()
    # No dispute game here (tests/dispute covers it).
    params = DeployParams(challenge_window=WINDOW, request_timeout=TIMEOUT, exclusive_period=EXCLUSIVE,
                          unbonding_period=UNBONDING, min_operator_stake=MIN_OPERATOR_STAKE,
                          max_assignment_weight=MAX_ASSIGNMENT_WEIGHT, min_bond_ratio=MIN_BOND_RATIO,
                          max_callback_gas=MAX_CALLBACK_GAS, tx_gas_cap=TX_GAS_CAP, dispute_game=False)
    oracle = deploy(w3, abi, bytecode, actors.owner, *params.oracle_args(verifier, ZERO_ADDRESS))
    client = OracleClient(w3, oracle)
    client.contract = w3.eth.contract(address=oracle, abi=abi)
    att = client.register_model(actors.owner, ModelSpec(
        onnx_hash=keccak(b"fuzz-attested"), fee=ATT_FEE, bond=ATT_BOND, input_length=64, output_length=32,
        mode=Mode.ATTESTED, uri="file:///models/fuzz-attested.onnx"))
    digits = model_entry("digits")
    exact = client.register_model(actors.owner, ModelSpec(
        onnx_hash=bytes.fromhex(digits["onnx_keccak256"][2:]), fee=EXACT_FEE, bond=EXACT_BOND, input_length=64,
        output_length=1, mode=Mode.EXACT, uri="file:///models/digits.onnx",
        program_commitment=bytes.fromhex(digits["program_commitment"][2:])), program_bytes("digits"))
    retired = client.register_model(actors.owner, ModelSpec(
        onnx_hash=keccak(b"fuzz-retired"), fee=ATT_FEE, bond=ATT_BOND, input_length=64, output_length=32,
        mode=Mode.ATTESTED, uri="file:///models/fuzz-retired.onnx"))
    client.retire_model(actors.owner, retired)
    token_art = artifacts.load("TestToken")
    token = deploy(w3, token_art.abi, token_art.bytecode, actors.owner)
    token_model = client.register_model(actors.owner, ModelSpec(
        onnx_hash=bytes.fromhex(digits["onnx_keccak256"][2:]), fee=TOKEN_FEE, bond=EXACT_BOND, input_length=64,
        output_length=1, mode=Mode.EXACT, uri="file:///models/digits.onnx",
        program_commitment=bytes.fromhex(digits["program_commitment"][2:]), fee_token=token),
        program_bytes("digits"))
    tok = w3.eth.contract(address=token, abi=token_art.abi)
    for requester in actors.requesters:
        send(w3, tok.functions.mint(requester, 10**30), actors.owner)
        send(w3, tok.functions.approve(oracle, 2**256 - 1), requester)

    consumers: dict[str, str] = {}
    consumer_abi: dict[str, Abi] = {}
    for kind in CONSUMER_KINDS:
        art = artifacts.load(kind)
        consumers[kind] = deploy(w3, art.abi, art.bytecode, actors.owner, oracle)
        consumer_abi[kind] = Abi(art.abi)

    initial_stake = {actors.honest[0]: 5 * EXACT_BOND, actors.honest[1]: 3 * EXACT_BOND,
                     actors.dishonest[0]: 3 * EXACT_BOND, actors.dishonest[1]: 2 * EXACT_BOND}
    for op, amount in initial_stake.items():
        client.stake(op, amount)
    initial_stake[actors.poor] = 0

    samples = [(bytes.fromhex(s["input_hex"][2:]), bytes.fromhex(s["expected_output_hex"][2:]))
               for s in digits["samples"]]
    force = artifacts.load("ForceSender")
    rpc = Rpc(url)
    return FuzzSystem(
        url=url, rpc=rpc, oracle=oracle, abi=Abi(abi), consumer_abi=consumer_abi, consumers=consumers,
        actors=actors, att_model=att, exact_model=exact, retired_model=retired, token_model=token_model, token=token,
        token_abi=Abi(token_art.abi), initial_stake=initial_stake,
        exact_samples=samples, force_sender_bytecode=force.bytecode, oracle_artifact=source,
    )


@functools.lru_cache(maxsize=4096)
def exact_reference(input_bytes: bytes) -> bytes:
    """The digits model's output on ``input_bytes`` by the reference interpreter (the executable spec).
    Honest operators post this; if the on-chain verifier ever disagreed, an honest operator would be slashed
    and the fuzzer would report it."""
    return reference.run_bytes(_digits_program(), input_bytes)


@functools.lru_cache(maxsize=1)
def _digits_program() -> Any:
    return program.decode(program_bytes("digits"))


def encode_create(bytecode: str, types: list[str], args: list[Any]) -> str:
    return bytecode + abi_encode(types, args).hex()
