// The live dashboard: polls /api/dashboard/state about once a second and ticks the countdowns in between.
import { api, el, eth, fee, hexCell, short, showOutput, STATUS_LABEL, ChainClock, secondsLeft, formatSeconds } from "./common.js";

const REFRESH_MS = 1000;
const TICK_MS = 200;
const clock = new ChainClock();
const rendered = {}; // section -> JSON last rendered, so unchanged tables are not rebuilt
let windowSeconds = 0;

function fill(section, rows, build) {
  const key = JSON.stringify(rows);
  if (rendered[section] === key) return;
  rendered[section] = key;
  const body = document.getElementById(`${section}-body`);
  body.replaceChildren(...rows.map(build));
  document.getElementById(`${section}-empty`).hidden = rows.length > 0;
}

function countdownCell(r) {
  const span = el("span", { class: "countdown", "data-testid": "countdown" });
  if (r.status === "SUBMITTED" || r.status === "FINALIZABLE") {
    span.dataset.deadline = String(r.challenge_deadline);
  } else if (r.status === "PENDING") {
    span.textContent = "waiting for an operator";
  } else if (r.finalized || r.fraud) {
    span.textContent = r.fraud ? "closed by a proven fraud" : "closed, settled";
  } else {
    span.textContent = "—";
  }
  return span;
}

function requestRow(r) {
  const output = r.fraud
    ? el("span", {}, el("span", { class: "bad", title: "claimed by the operator" }, `claimed ${showOutput(r.output)}`),
      " → ", el("span", { class: "ok", title: "re-executed on-chain" }, `correct ${showOutput(r.correct_output)}`))
    : showOutput(r.output);
  return el("tr", { id: `req-${r.id}`, "data-testid": "request-row", dataset: { requestId: r.id, status: r.status } },
    el("td", {}, hexCell(r.id, 8, 6)),
    el("td", {}, `#${r.model_id}`),
    el("td", {}, hexCell(r.requester)),
    el("td", {}, el("span", { class: "badge", "data-testid": "request-status", dataset: { status: r.status } },
      STATUS_LABEL[r.status] || r.status)),
    el("td", {}, hexCell(r.operator)),
    el("td", { class: "mono", "data-testid": "request-output" }, output),
    el("td", {}, countdownCell(r)),
    el("td", { class: "meta" }, `block ${r.requested_block}`));
}

function operatorRow(o) {
  return el("tr", { "data-testid": "operator-row", dataset: { address: o.address } },
    el("td", {}, hexCell(o.address, 10, 6)),
    el("td", { class: "num" }, eth(o.staked)),
    el("td", { class: "num" }, eth(o.locked)),
    el("td", { class: "num" }, eth(o.free)),
    el("td", { class: "num" }, eth(o.pending)),
    el("td", { class: "num" }, eth(o.credits)),
    el("td", { class: "num" }, `${o.results_submitted} / ${o.results_finalized}`),
    el("td", { class: "num" }, eth(o.fees_earned)),
    el("td", { class: `num${o.slashes ? " bad" : ""}` }, o.slashes ? `${o.slashes} (${eth(o.slashed)})` : "0"));
}

function disputeRow(d) {
  return el("tr", { "data-testid": "dispute-row", dataset: { requestId: d.request_id } },
    el("td", {}, el("a", { href: `#req-${d.request_id}` }, hexCell(d.request_id, 8, 6))),
    el("td", {}, d.model_id === null ? "—" : `#${d.model_id}`),
    el("td", {}, hexCell(d.operator)),
    el("td", {}, hexCell(d.challenger)),
    el("td", { class: "mono bad" }, showOutput(d.claimed_output)),
    el("td", { class: "mono ok" }, showOutput(d.correct_output)),
    el("td", { class: "num" }, eth(d.slashed)),
    el("td", { class: "num" }, eth(d.reward)),
    el("td", { class: "num" }, eth(d.burned)),
    el("td", { class: "meta" }, `${d.block}`));
}

function gameRow(g) {
  return el("tr", { "data-testid": "game-row", dataset: { game: String(g.game), phase: g.phase } },
    el("td", {}, `#${g.game}`),
    el("td", {}, el("a", { href: `#req-${g.request_id}` }, hexCell(g.request_id, 8, 6))),
    el("td", {}, el("span", { class: "badge", "data-testid": "game-phase" }, g.phase)),
    el("td", { class: "num" }, `${g.lo} / ${g.hi}`),
    el("td", {}, g.to_move || "—"),
    el("td", { class: "num" }, g.seconds_left === null || g.seconds_left === undefined ? "—" : formatSeconds(g.seconds_left)),
    el("td", {}, hexCell(g.operator)),
    el("td", {}, hexCell(g.challenger)),
    el("td", { class: g.winner === "challenger" ? "bad" : (g.winner ? "ok" : "") }, g.winner || "playing"));
}

function modelRow(m) {
  return el("tr", { "data-testid": "model-row", dataset: { modelId: String(m.id), mode: m.mode } },
    el("td", {}, `#${m.id}`),
    el("td", {}, el("span", { class: "badge", dataset: { mode: m.mode } }, m.mode)),
    el("td", { class: "num", "data-testid": "model-fee", title: m.fee_token || "" }, fee(m)),
    el("td", { class: "num" }, eth(m.bond)),
    el("td", {}, `${m.input_length} / ${m.output_length}`),
    el("td", {}, hexCell(m.onnx_hash, 10, 6)),
    el("td", {}, m.program_commitment ? hexCell(m.program_commitment, 10, 6) : "— (attested)"),
    el("td", { class: "mono", title: m.uri }, m.uri.length > 48 ? `…${m.uri.slice(-47)}` : m.uri),
    el("td", {}, el("span", { class: "badge", dataset: { retired: String(m.retired) } }, m.retired ? "retired" : "live")),
    el("td", { class: "num" }, `${m.requests}`));
}

function totals(s) {
  const t = s.totals;
  const by = (k) => t.by_status[k] || 0;
  const items = [
    ["Requests", `${t.requests}`], ["Awaiting operator", `${by("PENDING")}`],
    ["In challenge window", `${by("SUBMITTED") + by("FINALIZABLE")}`], ["Finalized", `${by("FINALIZED")}`],
    ["Frauds proven", `${t.frauds_proven}`], ["Slashed", eth(t.slashed)], ["Rewarded", eth(t.rewarded)],
    ["Burned", eth(t.burned)],
  ];
  const key = JSON.stringify(items);
  if (rendered.totals === key) return;
  rendered.totals = key;
  document.getElementById("totals").replaceChildren(...items.map(([k, v]) =>
    el("div", { "data-testid": `total-${k.toLowerCase().replace(/ /g, "-")}` }, el("dt", {}, k), el("dd", {}, v))));
}

function render(s) {
  clock.update(s.chain.chain_time);
  windowSeconds = s.parameters.challenge_window;
  document.getElementById("chain-info").textContent =
    `chain ${s.chain.chain_id} · oracle ${short(s.chain.oracle)} · block ${s.chain.block} · ` +
    `challenge window ${formatSeconds(s.parameters.challenge_window)} · request timeout ` +
    `${formatSeconds(s.parameters.request_timeout)}`;
  totals(s);
  fill("requests", s.requests, requestRow);
  fill("operators", s.operators, operatorRow);
  fill("disputes", s.disputes, disputeRow);
  fill("models", s.models, modelRow);
  tick();
}

function tick() {
  for (const span of document.querySelectorAll(".countdown[data-deadline]")) {
    const left = secondsLeft(Number(span.dataset.deadline), clock);
    const meter = el("meter", { min: 0, max: windowSeconds || 1, value: left, "aria-hidden": "true" });
    span.replaceChildren(meter, left > 0 ? `${formatSeconds(left)} left` : "closed, finalizing");
  }
}

function setLive(ok, text) {
  const live = document.getElementById("live");
  live.dataset.state = ok ? "ok" : "error";
  if (live.textContent !== text) live.textContent = text;
}

async function refresh() {
  try {
    const [s, games] = await Promise.all([api("api/dashboard/state?limit=200"), api("api/dashboard/games?limit=50")]);
    render(s);
    fill("games", games, gameRow);
    setLive(!s.chain.stale, s.chain.stale ? `stale: ${s.chain.error}` : "live");
  } catch (e) {
    setLive(false, `cannot reach the node: ${e.message}`);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

setInterval(tick, TICK_MS);
refresh();
