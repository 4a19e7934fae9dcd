// Try it: draw on an 8x8 grid, send it to the oracle, watch requested -> attested -> finalized.
import { api, el, eth, short, outputValue, ChainClock, formatSeconds } from "./common.js";

const SIZE = 8;
const POLL_MS = 400;
const TICK_MS = 200;

const grid = document.getElementById("grid");
const brush = document.getElementById("brush");
const brushValue = document.getElementById("brush-value");
const submitBtn = document.getElementById("submit");
const statusEl = document.getElementById("status");
const countdownEl = document.getElementById("countdown");
const resultEl = document.getElementById("result");
const digitEl = document.getElementById("result-digit");
const timeline = document.getElementById("timeline");

const pixels = new Array(SIZE * SIZE).fill(0);
const cells = [];
const clock = new ChainClock();
let config = null;
let busy = false;
let painting = null; // ink being painted while the pointer is down
let focusIndex = 0;
let current = null; // { id, deadline, final, seen: Set }

// ------------------------------------------------------------------ grid
function label(i) {
  return `Row ${Math.floor(i / SIZE) + 1}, column ${(i % SIZE) + 1}, ink ${pixels[i]}`;
}

function paint(i, value) {
  pixels[i] = value;
  const b = cells[i];
  b.style.setProperty("--ink", String(value));
  b.dataset.value = String(value);
  b.setAttribute("aria-label", label(i));
  b.setAttribute("aria-pressed", value > 0 ? "true" : "false");
  updateSubmit();
}

function toggled(i) {
  const ink = Number(brush.value);
  return pixels[i] === ink ? 0 : ink;
}

function cellIndex(target) {
  const b = target && target.closest ? target.closest("#grid button") : null;
  return b ? Number(b.dataset.index) : null;
}

function moveFocus(i) {
  cells[focusIndex].tabIndex = -1;
  focusIndex = i;
  cells[i].tabIndex = 0;
  cells[i].focus();
}

for (let i = 0; i < SIZE * SIZE; i++) {
  const b = el("button", { type: "button", "data-testid": `cell-${i}`, tabindex: i === 0 ? 0 : -1,
    dataset: { index: String(i), value: "0" } });
  cells.push(b);
  grid.append(b);
  paint(i, 0);
}

grid.addEventListener("pointerdown", (e) => {
  const i = cellIndex(e.target);
  if (i === null || e.button !== 0) return;
  painting = toggled(i);
  paint(i, painting);
  moveFocus(i);
});
grid.addEventListener("pointermove", (e) => {
  if (painting === null) return;
  const i = cellIndex(document.elementFromPoint(e.clientX, e.clientY));
  if (i !== null && pixels[i] !== painting) paint(i, painting);
});
for (const type of ["pointerup", "pointercancel"]) window.addEventListener(type, () => { painting = null; });
grid.addEventListener("click", (e) => {
  if (e.detail !== 0) return; // pointer clicks were handled on pointerdown; this is Enter / Space
  const i = cellIndex(e.target);
  if (i !== null) paint(i, toggled(i));
});
grid.addEventListener("keydown", (e) => {
  const i = cellIndex(e.target);
  if (i === null) return;
  const r = Math.floor(i / SIZE), c = i % SIZE;
  const to = { ArrowUp: [r - 1, c], ArrowDown: [r + 1, c], ArrowLeft: [r, c - 1], ArrowRight: [r, c + 1] }[e.key];
  if (!to) return;
  e.preventDefault();
  const [nr, nc] = to;
  if (nr >= 0 && nr < SIZE && nc >= 0 && nc < SIZE) moveFocus(nr * SIZE + nc);
});
brush.addEventListener("input", () => { brushValue.value = brush.value; brushValue.textContent = brush.value; });
document.getElementById("clear").addEventListener("click", () => { for (let i = 0; i < pixels.length; i++) paint(i, 0); });

function updateSubmit() {
  submitBtn.disabled = !(config && config.enabled) || busy || !pixels.some((v) => v > 0);
}

// ------------------------------------------------------------------ progress
function setStatus(stage, text) {
  statusEl.dataset.stage = stage;
  statusEl.textContent = text;
}

function setStages(states) {
  for (const li of document.querySelectorAll("#stages li")) li.dataset.state = states[li.dataset.stage] || "todo";
}

function clockTime(unix) {
  return new Date(unix * 1000).toLocaleTimeString([], { hour12: false });
}

function note(stage, text, at) {
  if (current.seen.has(stage)) return;
  current.seen.add(stage);
  timeline.append(el("li", { "data-stage": stage }, `${text}${at ? ` · block time ${clockTime(at)}` : ""}`));
}

function digit(hex) {
  const v = outputValue(hex);
  return v === null ? short(hex) : String(v);
}

function apply(r) {
  clock.update(r.as_of);
  current.deadline = r.challenge_deadline;
  note("requested", "requested", r.requested_at);
  if (r.submitted_at !== null) note("attested", `attested by ${short(r.operator)}: ${digit(r.output)}`, r.submitted_at);
  switch (r.stage) {
    case "requested":
      setStages({ requested: "active" });
      setStatus("requested", `requested: waiting for an operator to attest (request ${short(r.id, 8, 6)})`);
      break;
    case "attested":
      setStages({ requested: "done", attested: "active" });
      setStatus("attested", `attested: the operator answered ${digit(r.output)}; anyone can challenge it until the window closes`);
      break;
    case "finalized":
      note("finalized", `finalized: ${digit(r.final_output)}`, r.settled_at);
      setStages({ requested: "done", attested: "done", finalized: "done" });
      setStatus("finalized", `finalized: the model read ${digit(r.final_output)}`);
      break;
    case "fraud_proven":
      note("fraud_proven", `fraud proven, corrected to ${digit(r.correct_output)}`, r.settled_at);
      setStages({ requested: "done", attested: "failed", finalized: "done" });
      setStatus("fraud_proven", `fraud proven, corrected: the model read ${digit(r.correct_output)} ` +
        `(the operator claimed ${digit(r.output)} and was slashed)`);
      break;
    default: // expired, refunded
      note(r.stage, r.stage, r.settled_at);
      setStages({ requested: "failed" });
      setStatus(r.stage, r.stage === "expired"
        ? "expired: no operator answered before the deadline; the fee can be refunded"
        : "refunded: no operator answered; the fee went back to the requester");
  }
  const final = ["finalized", "fraud_proven", "expired", "refunded"].includes(r.stage);
  if (final && r.final_output) {
    digitEl.textContent = digit(r.final_output);
    resultEl.hidden = false;
  }
  return final;
}

function tick() {
  if (!current || current.final || current.deadline === null) {
    if (current && current.final) countdownEl.textContent = "";
    return;
  }
  const left = Math.max(0, current.deadline - clock.now());
  countdownEl.textContent = left > 0 ? `challenge window: ${formatSeconds(left)} left` : "challenge window closed, finalizing…";
}

async function poll() {
  try {
    const r = await api(`api/dashboard/requests/${current.id}`);
    current.final = apply(r);
  } catch (e) {
    if (e.status !== 404) countdownEl.textContent = `cannot reach the node (${e.message}); retrying`;
  }
  if (current.final) {
    busy = false;
    updateSubmit();
    tick();
  } else {
    setTimeout(poll, POLL_MS);
  }
}

submitBtn.addEventListener("click", async () => {
  busy = true;
  updateSubmit();
  timeline.replaceChildren();
  resultEl.hidden = true;
  countdownEl.textContent = "";
  setStages({});
  setStatus("sending", "sending the request…");
  try {
    const out = await api("api/try", { method: "POST", body: JSON.stringify({ pixels }) });
    current = { id: out.request_id, deadline: null, final: false, seen: new Set() };
    const link = document.getElementById("request-anchor");
    link.href = `dashboard#req-${out.request_id}`;
    link.textContent = short(out.request_id, 10, 8);
    document.getElementById("request-link").hidden = false;
    note("requested", `requested (fee ${eth(out.fee)}, block ${out.block})`, null);
    setStages({ requested: "active" });
    setStatus("requested", `requested: waiting for an operator to attest (request ${short(out.request_id, 8, 6)})`);
    poll();
  } catch (e) {
    setStatus("error", `error: ${e.message}`);
    busy = false;
    updateSubmit();
  }
});

const HEARTBEAT_MS = 2000;
let nodeDown = null; // null: answering; else the reason it is not

function showAvailability() {
  const info = document.getElementById("try-info");
  const notice = document.getElementById("try-disabled");
  if (nodeDown) {
    info.textContent = "the node is down";
    notice.textContent = `The node is not answering (${nodeDown}): it has stopped or lost its chain. ` +
      "Your drawing is kept; submit again when it is back (this page checks every few seconds).";
    notice.dataset.kind = "node-down";
    notice.hidden = false;
  } else if (config && config.enabled) {
    info.textContent = `model #${config.model_id} · fee ${eth(config.fee)}, paid by ${short(config.requester)}`;
    notice.hidden = true;
    delete notice.dataset.kind;
  } else {
    info.textContent = "try-it is unavailable";
    notice.textContent = (config && config.reason) || "try-it is disabled on this node";
    notice.dataset.kind = "disabled";
    notice.hidden = false;
  }
  updateSubmit();
}

async function loadConfig() {
  try {
    config = await api("api/try/config");
    nodeDown = null;
  } catch (e) {
    config = { enabled: false, reason: null };
    nodeDown = e.status ? `HTTP ${e.status}: ${e.message}` : "no answer";
  }
  showAvailability();
  setTimeout(loadConfig, HEARTBEAT_MS);
}

setInterval(tick, TICK_MS);
loadConfig();
