/* global document, Node */
// Small DOM and formatting helpers shared by the dashboard's pages. Text is always set as text, never as HTML.

/**
 * An element: `attrs` keys are attributes, except `text` (its text), `class`, `dataset` (data-*) and `on<event>`
 * (a listener). Children may be nodes, strings, numbers, arrays of them, or null/undefined/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Replaces `el`'s children, skipping null/undefined/false as `h` does (replaceChildren would print "null"). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** The API's error as it sent it: `type` and `message` verbatim, and `details` when there are any. */
export function errorBox(err) {
  const type = err && err.type ? err.type : "error";
  const message = err && err.message ? err.message : String(err);
  const status = err && err.status ? ` (HTTP ${err.status})` : "";
  return h(
    "div",
    { class: "error", role: "alert", dataset: { errorType: type } },
    h("code", { text: type }),
    `: ${message}${status}`,
    err && err.details ? h("pre", { text: JSON.stringify(err.details, null, 2) }) : null,
  );
}

/** What a page shows where a route this node does not serve (a 404 `not_found`) would have had its figures. */
export function unavailableBox(what, err) {
  return h(
    "div",
    { class: "unavailable", dataset: { unavailable: what } },
    h("strong", { text: `${what} is not available on this node.` }),
    h("div", { class: "note", text: `The API answered ${err.type}: ${err.message}` }),
  );
}

export const isMissingRoute = (err) => err && err.status === 404 && err.type === "not_found";

export function badge(text, kind = text) {
  return h("span", { class: `badge ${kind}`, text });
}

export function json(value) {
  return h("pre", { class: "json", text: value === undefined ? "—" : JSON.stringify(value, null, 2) });
}

/** One line of JSON, cut to `max` characters. */
export function snippet(value, max = 140) {
  const s = typeof value === "string" ? value : JSON.stringify(value);
  if (s === undefined) return "";
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

const dateTime = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateTime.format(d);
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function between(fromIso, toIso) {
  if (!fromIso) return null;
  return (toIso ? Date.parse(toIso) : Date.now()) - Date.parse(fromIso);
}

const integer = new Intl.NumberFormat("en-US");
export const num = (n) => (n === null || n === undefined ? "—" : integer.format(n));
export const usd = (n) => (n === null || n === undefined ? "—" : `$${Number(n).toFixed(n !== 0 && n < 0.01 ? 6 : 4)}`);

/** A labelled value for a `.fields` grid. */
export function field(label, value) {
  return h("div", null, h("span", { text: label }), value instanceof Node ? value : h("span", { class: "mono", text: value ?? "—" }));
}

export function table(headers, rows, attrs) {
  return h(
    "table",
    attrs,
    h("thead", null, h("tr", null, headers.map((t) => (typeof t === "string" ? h("th", { text: t }) : h("th", { class: t.class, text: t.text }))))),
    h("tbody", null, rows),
  );
}

export function td(value, cls) {
  return value instanceof Node ? h("td", { class: cls }, value) : h("td", { class: cls, text: value ?? "—" });
}

/** A short-lived message under the page title. */
export function flash(text) {
  return h("div", { class: "flash", role: "status", text });
}
