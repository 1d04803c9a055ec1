// Agents: each agent's versions, stable version and canary (GET /v1/agents), and the kill switches
// (GET /v1/switches) with a control to flip one (PUT /v1/switches/{kind}/{name}). What is shown after a
// flip is read back from the API, never assumed.

import { api } from "./api.mjs";
import { badge, errorBox, field, fill, flash, h, num, table, td, time } from "./dom.mjs";

const KINDS = ["agent", "prompt", "tool", "model"];

export function render(main, _route, signal) {
  const messages = h("div");
  const agentsBox = h("div", { id: "agents" });
  const switchesBox = h("div", { id: "switches" });
  const inFlight = h("select", { id: "in-flight" }, h("option", { value: "drain", text: "drain (let work under way finish)" }), h("option", { value: "abort", text: "abort (cancel work under way)" }));
  main.append(
    h("h1", { text: "Agents" }),
    messages,
    agentsBox,
    h("h1", null, "Kill switches"),
    h("div", { class: "filters panel" }, h("label", null, "a pause applies to work under way as", inFlight)),
    switchesBox,
  );

  let switches = [];
  let agents = [];

  async function flip(kind, name, paused) {
    try {
      const s = await api(`/v1/switches/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`, { method: "PUT", body: { paused, in_flight: inFlight.value }, signal });
      fill(messages, flash(`${s.kind} ${s.name}: ${s.paused ? "paused" : "resumed"} (${s.in_flight}, version ${s.version}, by ${s.updated_by})`));
    } catch (err) {
      if (!signal.aborted) fill(messages, errorBox(err));
    }
    await load();
  }

  const pausedOf = (kind, name) => switches.some((s) => s.kind === kind && s.name === name && s.paused);
  const flipButton = (kind, name) => {
    const paused = pausedOf(kind, name);
    return h("button", {
      type: "button",
      class: paused ? "" : "danger",
      dataset: { switch: `${kind}/${name}` },
      text: paused ? "Resume" : "Pause",
      onclick: () => void flip(kind, name, !paused),
    });
  };

  function draw() {
    fill(agentsBox, agents.length === 0 ? h("p", { class: "note", text: "No agent is served." }) : agents.map((a) => agentCard(a, pausedOf("agent", a.name), flipButton("agent", a.name))));
    fill(
      switchesBox,
      switches.length === 0
        ? h("p", { class: "note", text: "No switch was ever set." })
        : table(
            ["kind", "name", "state", "in flight", "changed by", "at", { text: "version", class: "num" }, ""],
            switches.map((s) =>
              h(
                "tr",
                { dataset: { switchRow: `${s.kind}/${s.name}`, paused: String(s.paused) } },
                td(s.kind),
                td(h("span", { class: "mono", text: s.name })),
                td(badge(s.paused ? "paused" : "running", s.paused ? "paused" : "ok")),
                td(s.in_flight),
                td(s.updated_by),
                td(time(s.updated_at)),
                td(num(s.version), "num"),
                td(flipButton(s.kind, s.name)),
              ),
            ),
          ),
      newSwitchForm(agents, (kind, name) => void flip(kind, name, true)),
    );
  }

  async function load() {
    try {
      [agents, switches] = await Promise.all([api("/v1/agents", { signal }), api("/v1/switches", { signal })]);
      draw();
    } catch (err) {
      if (!signal.aborted) fill(messages, errorBox(err));
    }
  }
  void load();
}

function agentCard(a, paused, button) {
  const c = a.canary;
  return h(
    "div",
    { class: "panel", dataset: { agent: a.name } },
    h("h2", null, a.name, " ", paused ? badge("paused") : badge("running", "ok"), " ", button),
    h("p", { class: "note", text: a.description }),
    h(
      "div",
      { class: "fields" },
      field("stable version", a.stable_version),
      field("file version", a.file_version),
      field("default tier", a.default_tier),
      field("tiers", Object.entries(a.tiers).map(([tier, model]) => `${tier}: ${model}`).join(", ")),
      field("tools", a.tools.join(", ") || "none"),
      a.mcp_servers.length > 0 ? field("MCP servers", a.mcp_servers.join(", ")) : null,
      field("canary", c ? h("span", null, badge(c.state), ` ${c.version} at ${c.weight}% (step ${c.step} of ${c.steps.join("/")}%)`) : "none"),
    ),
    table(
      ["version", "origin", "first seen", { text: "tasks", class: "num" }, ""],
      a.versions.map((v) =>
        h(
          "tr",
          null,
          td(h("span", { class: "mono", text: v.version })),
          td(v.origin),
          td(time(v.first_seen)),
          td(num(v.tasks), "num"),
          td(v.version === a.stable_version ? badge("stable", "ok") : c && c.version === v.version ? badge("canary", "warn") : ""),
        ),
      ),
    ),
  );
}

/** Pauses a switch not listed yet: any kind, with the names the agents suggest. */
function newSwitchForm(agents, pause) {
  const names = new Set();
  for (const a of agents) {
    names.add(a.name);
    for (const t of a.tools) names.add(t);
    for (const m of Object.values(a.tiers)) names.add(m);
    for (const v of a.versions) names.add(v.version);
  }
  const kind = h("select", { name: "kind" }, KINDS.map((k) => h("option", { value: k, text: k })));
  const name = h("input", { name: "name", list: "switch-names", placeholder: "order-router, route_order, …", required: true });
  const form = h(
    "form",
    { class: "filters panel", id: "new-switch" },
    h("label", null, "kind", kind),
    h("label", null, "name", name),
    h("datalist", { id: "switch-names" }, [...names].sort().map((n) => h("option", { value: n }))),
    h("button", { type: "submit", class: "danger", text: "Pause" }),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    pause(kind.value, name.value.trim());
  });
  return form;
}
