// Queues and Limits: the cluster's live figures (GET /v1/queues, GET /v1/limits), read again every 2 s.
// A node that does not serve the route (a 404 `not_found`) gets a plain "not available" in place of them.

import { api, poll } from "./api.mjs";
import { errorBox, fill, h, isMissingRoute, num, table, td, time, unavailableBox } from "./dom.mjs";

const EVERY_MS = 2000;

/** A page that draws `path`'s answer with `draw` every 2 s, keeping the last figures while a read fails. */
function livePage(main, signal, title, path, draw) {
  const at = h("span", { class: "note" });
  const body = h("div", { id: "figures" });
  const errors = h("div");
  main.append(h("h1", null, title, at), errors, body);
  poll(
    async () => {
      try {
        const answer = await api(path, { signal });
        fill(errors);
        fill(body, ...draw(answer));
        at.textContent = `as of ${time(answer.at)}, every ${EVERY_MS / 1000} s`;
      } catch (err) {
        if (signal.aborted) return;
        if (isMissingRoute(err)) {
          fill(body);
          fill(errors, unavailableBox(title, err));
        } else fill(errors, errorBox(err));
      }
    },
    EVERY_MS,
    signal,
  );
}

function card(label, value, id) {
  return h("div", { class: "card", dataset: { figure: id } }, h("div", { class: "value", text: num(value) }), h("div", { class: "label", text: label }));
}

export function queues(main, _route, signal) {
  livePage(main, signal, "Queues", "/v1/queues", (q) => [
    h(
      "div",
      { class: "cards" },
      card("queued tasks", q.tasks.queued, "queued"),
      card("running tasks", q.tasks.running, "running"),
      card("awaiting approval", q.tasks.awaiting_approval, "awaiting_approval"),
      card("dead letters", q.dead_letters, "dead_letters"),
    ),
    h("h2", { text: "Channels" }),
    q.queues.length === 0
      ? h("p", { class: "note", text: "No channel reported." })
      : table(
          ["channel", { text: "waiting", class: "num" }, { text: "pending", class: "num" }, { text: "lag", class: "num" }],
          q.queues.map((c) => h("tr", null, td(h("span", { class: "mono", text: c.channel })), td(num(c.waiting), "num"), td(num(c.pending), "num"), td(`${Number(c.lag_seconds).toFixed(1)} s`, "num"))),
        ),
  ]);
}

const DIMENSIONS = [
  ["rpm", "requests / min"],
  ["itpm", "input tokens / min"],
  ["otpm", "output tokens / min"],
];

export function limits(main, _route, signal) {
  livePage(main, signal, "Limits", "/v1/limits", (l) => [
    h("p", { class: "note", text: `Use over the last ${num(l.window_ms / 1000)} s against each model's limits.` }),
    l.models.length === 0
      ? h("p", { class: "note", text: "No model has limits configured." })
      : table(
          ["model", "source", ...DIMENSIONS.map(([, label]) => label)],
          l.models.map((m) => h("tr", { dataset: { model: m.model } }, td(h("span", { class: "mono", text: m.model })), td(m.source), DIMENSIONS.map(([key]) => td(usage(m, key))))),
        ),
  ]);
}

function usage(m, key) {
  const limit = m.limits?.[key];
  const used = m.used?.[key] ?? 0;
  const headroom = m.headroom?.[key];
  if (limit === undefined || limit === null) return h("span", { class: "muted", text: `${num(used)} used, no limit` });
  return h(
    "div",
    null,
    h("meter", { min: 0, max: limit, low: limit * 0.7, high: limit * 0.9, optimum: 0, value: Math.min(used, limit) }),
    h("div", { class: "note", text: `${num(used)} / ${num(limit)}; headroom ${num(headroom)}` }),
  );
}
