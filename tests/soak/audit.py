"""The soak's audit: what the chain says after the run, checked against protocol.md §8 and the fault record.

Sources are the chain's own (events, statuses, stakes, credits, balances, every mined transaction and its
receipt), the numpy reference interpreter over the committed digits program (independent of the workers'
onnxruntime path), and the challenger's state file. Every broken rule becomes one line in ``run.violations``;
the figures for the report go to ``run.figures``.

Rules:

- lifecycle: each request is FINALIZED, FRAUD_PROVEN or REFUNDED, settled by exactly one settlement event;
  serviceable requests are answered (never refunded), ghost requests are refunded;
- at most one effective submission: one ``ResultSubmitted`` per request, and no operator includes a request in
  more than one successful submission transaction;
- correctness: an ``EXACT`` result that differs from the reference is FRAUD_PROVEN (slashed, the correct output
  delivered); one that matches is FINALIZED; only the dishonest worker is ever wrong, exactly on the inputs
  its corruption rule picks;
- the challenger sent a challenge only for wrong results, never failed one, never missed one, never died;
- economics: slashes only for proven frauds (bond each), honest stakes untouched, credits as earned,
  burn address got half of every slashed bond;
- solvency at every pinned block sampled during the run and at the end (escrow then zero);
- exclusive assignment: no request answered by another operator than its assignee inside its exclusive period
  (figures: the share answered by the assignee, answer latency in block time).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from web3 import Web3

from oracle.chain.types import Status
from oracle.profile import reference
from oracle.profile.models import program_bytes
from oracle.profile.program import decode

from .cluster import BOND, FEE, STAKE, BatchRpc, decode_words
from .node_proc import should_corrupt

BURN = Web3.to_checksum_address("0x000000000000000000000000000000000000dead")
FINAL = (Status.FINALIZED, Status.FRAUD_PROVEN, Status.REFUNDED)


def _logs(run: Any, name: str) -> list[dict[str, Any]]:
    chain = run.chain
    ev = getattr(chain.client.contract.events, name)()
    return [{**e["args"], "blockNumber": int(e["blockNumber"])}
            for e in ev.get_logs(from_block=chain.deployment.block, to_block="latest")]


def audit(run: Any, batch: BatchRpc) -> None:
    chain, cfg = run.chain, run.config
    v: list[str] = []
    fig: dict[str, Any] = {}
    program = decode(program_bytes("digits"))
    sent = {s.request_id: s for s in run.sent}
    rids = list(sent)
    c = chain.client.contract

    # ------------------------------------------------------------------ chain state
    statuses = {r: Status(decode_words(x, 1)[0]) for r, x in zip(rids, batch.batch([
        ("eth_call", [{"to": chain.oracle, "data": c.functions.statusOf(r)._encode_transaction_data()}, "latest"])  # noqa: SLF001
        for r in rids]), strict=True)}
    requested = _logs(run, "InferenceRequested")
    submitted = _logs(run, "ResultSubmitted")
    finalized = _logs(run, "RequestFinalized")
    frauds = _logs(run, "FraudProven")
    refunds = _logs(run, "RequestRefunded")
    slashes = _logs(run, "Slashed")

    if sorted(int(e["requestId"]) for e in requested) != sorted(rids):
        v.append(f"InferenceRequested events ({len(requested)}) differ from the requests sent ({len(rids)})")
    settled: Counter[int] = Counter()
    for e in (*finalized, *frauds, *refunds):
        settled[int(e["requestId"])] += 1
    subs: dict[int, dict[str, Any]] = {}
    sub_count: Counter[int] = Counter()
    for e in submitted:
        rid = int(e["requestId"])
        sub_count[rid] += 1
        subs[rid] = e
    fraud_by_rid = {int(e["requestId"]): e for e in frauds}
    fin_by_rid = {int(e["requestId"]): e for e in finalized}
    slash_by_rid: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in slashes:
        slash_by_rid[int(e["requestId"])].append(e)

    # ------------------------------------------------------------------ lifecycle, exactly once
    for rid, s in sent.items():
        st = statuses[rid]
        if st not in FINAL:
            v.append(f"{rid:#x} ({s.kind}) ended {st.name}, not settled")
        if settled[rid] != 1:
            v.append(f"{rid:#x} ({s.kind}) has {settled[rid]} settlement events (exactly one expected)")
        if sub_count[rid] > 1:
            v.append(f"{rid:#x} has {sub_count[rid]} ResultSubmitted events")
        if s.kind == "ghost":
            if st is not Status.REFUNDED or sub_count[rid]:
                v.append(f"ghost request {rid:#x} ended {st.name} with {sub_count[rid]} submissions (refund expected)")
        elif st is Status.REFUNDED or sub_count[rid] != 1:
            v.append(f"serviceable {s.kind} request {rid:#x} ended {st.name} with {sub_count[rid]} submissions")
    unknown = set(settled) - set(sent)
    if unknown:
        v.append(f"settlement events for requests nobody sent: {sorted(hex(r) for r in unknown)[:5]}")

    # ------------------------------------------------------------------ correctness of every result
    wrong: set[int] = set()
    by_op: Counter[str] = Counter()
    fin_by_op: Counter[str] = Counter()
    corrupted_predicted = 0
    for rid, e in subs.items():
        s = sent[rid]
        op = str(e["operator"])
        by_op[op] += 1
        out = bytes(e["output"])
        if s.kind != "exact":
            if statuses[rid] is not Status.FINALIZED or rid in fraud_by_rid:
                v.append(f"ATTESTED result {rid:#x} ended {statuses[rid].name}")
            continue
        expected = reference.run_bytes(program, s.input)
        is_wrong = out != expected
        predicted = op == chain.dishonest and should_corrupt(cfg.seed, s.input, cfg.corrupt_rate)
        corrupted_predicted += predicted
        if is_wrong != predicted:
            v.append(f"{rid:#x}: output by {op} is {'wrong' if is_wrong else 'right'}, the corruption rule "
                     f"predicted {'wrong' if predicted else 'right'} (honest workers must always be right)")
        if is_wrong:
            wrong.add(rid)
            f = fraud_by_rid.get(rid)
            if statuses[rid] is not Status.FRAUD_PROVEN or f is None:
                v.append(f"WRONG result {rid:#x} by {op} ended {statuses[rid].name} (not slashed)")
                continue
            if bytes(f["correctOutput"]) != expected:
                v.append(f"{rid:#x}: fraud proof delivered {bytes(f['correctOutput']).hex()}, "
                         f"reference {expected.hex()}")
            if str(f["challenger"]) != chain.challenger:
                v.append(f"{rid:#x}: proven by {f['challenger']}, not our challenger")
            if int(f["reward"]) != BOND - BOND // 2 + FEE or int(f["burned"]) != BOND // 2:
                v.append(f"{rid:#x}: reward {f['reward']} / burned {f['burned']} differ from the economics")
            sl = slash_by_rid.get(rid, [])
            if len(sl) != 1 or str(sl[0]["operator"]) != op or int(sl[0]["amount"]) != BOND:
                v.append(f"{rid:#x}: slashes {sl} (one of {BOND} from {op} expected)")
        elif statuses[rid] is not Status.FINALIZED or rid in fraud_by_rid:
            v.append(f"correct result {rid:#x} by {op} ended {statuses[rid].name}")
    for rid, e in fin_by_rid.items():
        if rid in subs and str(e["operator"]) != str(subs[rid]["operator"]):
            v.append(f"{rid:#x} finalized for {e['operator']}, submitted by {subs[rid]['operator']}")
        fin_by_op[str(e["operator"])] += 1
    for rid in slash_by_rid:
        if rid not in wrong:
            v.append(f"slash without a proven fraud: {rid:#x} {slash_by_rid[rid]}")

    # ------------------------------------------------------------------ every mined transaction
    head = int(batch.call("eth_blockNumber", []), 16)
    blocks = list(range(chain.deployment.block + 1, head + 1))
    full = batch.batch([("eth_getBlockByNumber", [hex(n), True]) for n in blocks], chunk=100)
    receipts = batch.batch([("eth_getBlockReceipts", [hex(n)]) for n in blocks], chunk=100)
    status_of_tx = {r["transactionHash"]: int(r["status"], 16) for rs in receipts for r in rs}
    tx_kinds: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    submit_txs: dict[tuple[str, int], int] = Counter()
    finalize_txs: dict[tuple[str, int], int] = Counter()
    challenged: Counter[int] = Counter()
    margins: list[int] = []  # seconds of the window left when each successful challenge was mined
    ts_of = {int(b["number"], 16): int(b["timestamp"], 16) for b in full}
    oracle_lc = chain.oracle.lower()
    for b in full:
        for tx in b["transactions"]:
            if (tx.get("to") or "").lower() != oracle_lc:
                continue
            fn, args = c.decode_function_input(tx["input"])
            name = fn.fn_name
            sender = Web3.to_checksum_address(tx["from"])
            ok = status_of_tx[tx["hash"]] == 1
            tx_kinds[name] += 1
            if not ok:
                failed[f"{name} by {sender[:10]}"] += 1
                continue
            if name == "submitResults":
                for rid in args["requestIds"]:
                    submit_txs[(sender, int(rid))] += 1
            elif name == "submitResult":
                submit_txs[(sender, int(args["requestId"]))] += 1
            elif name == "finalizeBatch":
                for rid in args["requestIds"]:
                    finalize_txs[(sender, int(rid))] += 1
            elif name == "finalize":
                finalize_txs[(sender, int(args["requestId"]))] += 1
            elif name == "challenge":
                if sender != chain.challenger:
                    v.append(f"challenge of {int(args['requestId']):#x} sent by {sender}")
                rid = int(args["requestId"])
                challenged[rid] += 1
                if rid in subs:
                    deadline = ts_of[subs[rid]["blockNumber"]] + cfg.window
                    margins.append(deadline - int(b["timestamp"], 16))
    # exclusive assignment: who answered each request, and how long after it was requested (block time)
    assignee_of = {int(e["requestId"]): str(e["assignee"]) for e in requested}
    requested_at = {int(e["requestId"]): ts_of[e["blockNumber"]] for e in requested}
    by_assignee = sum(1 for rid, e in subs.items() if str(e["operator"]) == assignee_of.get(rid))
    latencies = sorted(ts_of[e["blockNumber"]] - requested_at[rid] for rid, e in subs.items())
    exclusive = chain.deployment.params.exclusive_period
    for rid, e in subs.items():
        early = ts_of[e["blockNumber"]] < requested_at[rid] + exclusive
        if early and int(assignee_of[rid], 16) != 0 and str(e["operator"]) != assignee_of[rid]:
            v.append(f"{rid:#x} answered by {e['operator']} inside the exclusive period of {assignee_of[rid]}")
    for (op, rid), n in submit_txs.items():
        if n > 1:
            v.append(f"{op} put {rid:#x} in {n} successful submission transactions (at most one effective "
                     "submission per request)")
    for rid, n in challenged.items():
        if rid not in wrong:
            v.append(f"the challenger challenged a CORRECT result {rid:#x}")
        if n > 1:
            v.append(f"{rid:#x} challenged {n} times")
    if set(challenged) != wrong:
        v.append(f"{len(wrong - set(challenged))} wrong results were never challenged")
    for k, n in failed.items():
        if k.startswith("challenge"):
            v.append(f"{n} challenge transactions reverted")

    # ------------------------------------------------------------------ the challenger's own record
    if not run.challenger_exit_codes or run.challenger_exit_codes[-1] != 0:
        v.append(f"the challenger did not exit cleanly on SIGTERM (exit codes {run.challenger_exit_codes})")
    if run.challenger_log.get("local_reexecution_disagrees_with_chain"):
        v.append("the challenger's local re-execution disagreed with the chain's")
    claim_states = Counter(state for state, _ in run.challenger_claims.values())
    for rid, (state, _tx) in run.challenger_claims.items():
        s = sent.get(rid)
        want = ("not_exact" if s is None or s.kind != "exact" else "proven" if rid in wrong else "correct")
        if state != want:
            v.append(f"challenger claim {rid:#x} is {state}, expected {want}")
    if len(run.challenger_claims) != len(subs):
        v.append(f"the challenger saw {len(run.challenger_claims)} claims of {len(subs)} submissions")
    if claim_states.get("missed") or claim_states.get("failed"):
        v.append(f"the challenger missed {claim_states.get('missed', 0)} windows, "
                 f"failed {claim_states.get('failed', 0)}")

    for name, codes in run.worker_exit_codes.items():
        if not codes or codes[-1] != 0:
            v.append(f"{name} did not exit cleanly on SIGTERM (exit codes {codes})")

    # ------------------------------------------------------------------ economics and solvency
    stakes = {op: chain.client.stake_of(op) for op in chain.operators}
    accounts = [*chain.operators, chain.challenger, *chain.requesters]
    credits = {a: chain.client.credits_of(a) for a in accounts}
    n_fraud = len(wrong)
    for op in chain.honest:
        st = stakes[op]
        if (st.staked, st.locked, st.pending) != (STAKE, 0, 0):
            v.append(f"honest operator {op} stake is {st} (untouched {STAKE} expected)")
        if any(str(e["operator"]) == op for e in slashes):
            v.append(f"honest operator {op} was slashed")
    d = stakes[chain.dishonest]
    if (d.staked, d.locked) != (STAKE - BOND * n_fraud, 0):
        v.append(f"dishonest operator stake {d}, expected {STAKE - BOND * n_fraud} after {n_fraud} frauds")
    for op in chain.operators:
        if credits[op] != FEE * fin_by_op[op]:
            v.append(f"{op} credits {credits[op]} != fee x {fin_by_op[op]} finalized")
    if credits[chain.challenger] != (BOND - BOND // 2 + FEE) * n_fraud:
        v.append(f"challenger credits {credits[chain.challenger]} for {n_fraud} frauds")
    refunds_by: Counter[str] = Counter(str(e["requester"]) for e in refunds)
    for r in chain.requesters:
        if credits[r] != FEE * refunds_by[r]:
            v.append(f"requester {r} credits {credits[r]} != {refunds_by[r]} refunds")
    if len(slashes) != n_fraud:
        v.append(f"{len(slashes)} slashes for {n_fraud} proven frauds")
    burned = int(chain.w3.eth.get_balance(BURN))
    if burned != (BOND // 2) * n_fraud:
        v.append(f"burn address holds {burned}, expected {(BOND // 2) * n_fraud}")
    balance = int(chain.w3.eth.get_balance(Web3.to_checksum_address(chain.oracle)))
    owed = sum(s.staked + s.pending for s in stakes.values()) + sum(credits.values())
    if balance != owed:
        v.append(f"SOLVENCY at the end: balance {balance} != stakes + credits {owed} (escrow is zero)")
    for block, bal, ow in run.solvency_checks:
        if bal != ow:
            v.append(f"SOLVENCY at block {block}: balance {bal} != owed {ow}")

    # ------------------------------------------------------------------ figures
    kinds = Counter(s.kind for s in run.sent)
    names = {chain.honest[0]: "honest-a", chain.honest[1]: "honest-b", chain.dishonest: "dishonest"}
    fig.update({
        "requests": len(run.sent),
        "requests_by_kind": dict(kinds),
        "finalized": sum(1 for st in statuses.values() if st is Status.FINALIZED),
        "frauds_proven": len(frauds),
        "refunded": len(refunds),
        "wrong_results_submitted": n_fraud,
        "dishonest_lies_predicted_and_landed": corrupted_predicted,
        "submissions_by_worker": {names[k]: n for k, n in by_op.items()},
        "finalized_by_worker": {names.get(k, k): n for k, n in fin_by_op.items()},
        "kills": len(run.kills),
        "kills_by_worker": dict(Counter(k.worker for k in run.kills)),
        "kills_with_tx_pending": sum(1 for k in run.kills if k.txs_pending),
        "kills_at_broadcast": sum(1 for k in run.kills if k.at_broadcast),
        "worker_restarts": dict(run.restarts),
        "freezes": len(run.freezes),
        "freezes_by_worker": dict(Counter(w for w, _ in run.freezes)),
        "challenger_kills": run.challenger_kills,
        "rpc_faults": dict(sorted(run.faults.items())),
        "rpc_faults_total": sum(run.faults.values()),
        "rpc_requests_proxied": run.proxied_requests,
        "challenger_rpc_faults": dict(sorted(run.challenger_faults.items())),
        "worker_rpc_error_log_lines": dict(run.worker_rpc_errors),
        "worker_error_sites": dict(run.worker_error_sites.most_common(8)),
        "solvency_checks": len(run.solvency_checks) + 2,  # + the end, + the empty contract after withdrawal
        "blocks": len(blocks),
        "oracle_txs": dict(tx_kinds),
        "failed_txs": dict(failed),
        "finalize_duplicates": sum(1 for n in finalize_txs.values() if n > 1),
        "challenge_margin_s": ({"min": min(margins), "median": sorted(margins)[len(margins) // 2],
                                "window": cfg.window} if margins else {}),
        "challenger_claims": dict(claim_states),
        "challenger_log": dict(run.challenger_log),
        "answered_by_assignee": by_assignee,
        "answered_by_assignee_share": round(by_assignee / max(1, len(subs)), 4),
        "answer_latency_s": ({"p50": latencies[len(latencies) // 2], "p99": latencies[len(latencies) * 99 // 100],
                              "max": latencies[-1]} if latencies else {}),
        "driver_finalized": run.driver_finalized,
        "refunded_by_driver": run.refunded_by_driver,
    })
    # results the driver's fallback had to finalize for the workers, of all finalized results (issue 12)
    fig["driver_finalized_share"] = round(run.driver_finalized / max(1, fig["finalized"]), 4)
    if run.proxy_errors:
        v.append(f"the fault proxy itself failed: {run.proxy_errors[:3]}")
    run.violations = v
    run.figures = fig
