// Helpers shared by the dashboard and the try-it page. Plain ES module, no dependencies.
// Everything from the chain is put into the page with textContent (never innerHTML): model URIs and
// addresses are attacker-controlled strings.

/** Fetches JSON; throws an Error carrying the server's `detail` message. */
export async function api(path, options = {}) {
  const resp = await fetch(path, {
    ...options,
    headers: { Accept: "application/json", ...(options.body ? { "Content-Type": "application/json" } : {}) },
    cache: "no-store",
  });
  let body = null;
  try { body = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok) {
    const detail = body && body.detail;
    const msg = typeof detail === "string" ? detail
      : Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : `HTTP ${resp.status}`;
    const err = new Error(msg);
    err.status = resp.status;
    throw err;
  }
  return body;
}

/** Creates an element: el("td", {class: "num", dataset: {x: 1}}, "text", otherNode). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** 0x1234…abcd */
export function short(hex, head = 6, tail = 4) {
  if (!hex) return "—";
  return hex.length <= head + tail + 1 ? hex : `${hex.slice(0, head)}…${hex.slice(-tail)}`;
}

/** An element showing a shortened hex value, the full value in its title. */
export function hexCell(hex, head, tail) {
  return el("span", { class: "mono", title: hex || "" }, short(hex, head, tail));
}

/** Base units (decimal string) of an asset with `decimals` decimals, with up to 6 decimals, exact (BigInt). */
export function amount(units, decimals, symbol) {
  if (units === null || units === undefined) return "—";
  const v = BigInt(units);
  const neg = v < 0n;
  const a = neg ? -v : v;
  const one = 10n ** BigInt(decimals);
  const whole = a / one;
  let frac = (a % one).toString().padStart(decimals, "0").slice(0, 6).replace(/0+$/, "");
  if (!frac && a % one !== 0n) frac = "000000"; // tiny but non-zero: show that it is not 0
  return `${neg ? "-" : ""}${whole}${frac ? "." + frac : ""} ${symbol}`;
}

/** Wei (decimal string) as ETH with up to 6 decimals, exact (BigInt). */
export function eth(wei) {
  return amount(wei, 18, "ETH");
}

/** The fee of a model or request in its asset: ETH, or its token's symbol (the shortened address if none). */
export function fee(x) {
  if (!x.fee_token) return eth(x.fee);
  const symbol = x.fee_symbol === x.fee_token ? short(x.fee_token) : x.fee_symbol;
  return amount(x.fee, x.fee_decimals, symbol);
}

/** A short output (up to 6 bytes) read as a signed big-endian integer, e.g. the digit; null otherwise. */
export function outputValue(hex) {
  if (!hex || hex.length < 4 || hex.length > 14) return null;
  const bytes = (hex.length - 2) / 2;
  let v = parseInt(hex.slice(2), 16);
  if (v >= 2 ** (8 * bytes - 1)) v -= 2 ** (8 * bytes);
  return v;
}

export function showOutput(hex) {
  if (!hex) return "—";
  const v = outputValue(hex);
  return v === null ? short(hex, 10, 6) : `${short(hex, 10, 6)} (${v})`;
}

export const STATUS_LABEL = {
  NONE: "unknown", PENDING: "requested", EXPIRED: "expired", REFUNDED: "refunded", SUBMITTED: "attested",
  FINALIZABLE: "attested, window over", FINALIZED: "finalized", FRAUD_PROVEN: "fraud proven, corrected",
};

/**
 * The chain's clock, estimated between refreshes: the last block's timestamp plus the time elapsed since it
 * was first seen. It never runs backwards, so countdowns tick smoothly even when blocks are slow.
 */
export class ChainClock {
  constructor() { this.base = null; this.at = 0; }
  update(chainTime) {
    if (this.base === null || chainTime > this.now()) { this.base = chainTime; this.at = performance.now(); }
  }
  now() { return this.base === null ? 0 : this.base + (performance.now() - this.at) / 1000; }
}

/** "in 2.4 s" style countdown text for a deadline (unix seconds) on a clock. */
export function secondsLeft(deadline, clock) {
  return Math.max(0, deadline - clock.now());
}

export function formatSeconds(s) {
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 120) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  return `${s.toFixed(1)} s`;
}
