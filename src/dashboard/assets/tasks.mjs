/* global location */
// Tasks: the tenant's tasks, newest first, a page at a time (GET /v1/tasks, keyset paging on `next_cursor`).
// Status and agent are the route's own filters. The prompt version and the time range are applied here,
// to the pages read: the list is newest first, so paging stops at the first task older than the range.

import { api, query } from "./api.mjs";
import { badge, between, duration, errorBox, fill, h, num, table, td, time, usd } from "./dom.mjs";

const STATUSES = ["queued", "running", "awaiting_approval", "succeeded", "failed", "cancelled"];
/** Tasks asked for per request, unless the address says `limit=` (1-1000, as the route takes). */
const PAGE_SIZE = 100;
/** Pages read per "load more" while the browser-side filters leave too few rows to show. */
const MAX_PAGES_PER_LOAD = 20;

export function render(main, { query: q }, signal) {
  const filters = {
    status: q.get("status") ?? "",
    agent: q.get("agent") ?? "",
    prompt: q.get("prompt") ?? "",
    from: q.get("from") ?? "",
    to: q.get("to") ?? "",
  };
  const pageSize = Math.min(1000, Math.max(1, Number(q.get("limit")) || PAGE_SIZE));
  const from = filters.from ? Date.parse(filters.from) : null;
  const to = filters.to ? Date.parse(filters.to) : null;
  const local = (t) => (!filters.prompt || t.prompt_version === filters.prompt) && (to === null || Date.parse(t.created_at) <= to);

  const agentSelect = h("select", { name: "agent" }, h("option", { value: "", text: "any" }));
  const form = h(
    "form",
    { class: "filters panel", id: "task-filters" },
    h("label", null, "status", h("select", { name: "status" }, h("option", { value: "", text: "any" }), STATUSES.map((s) => h("option", { value: s, text: s, selected: s === filters.status })))),
    h("label", null, "agent", agentSelect),
    h("label", null, "prompt version", h("input", { name: "prompt", value: filters.prompt, size: 14, placeholder: "any", list: "prompt-versions" })),
    h("label", null, "created from", h("input", { name: "from", type: "datetime-local", value: filters.from })),
    h("label", null, "created to", h("input", { name: "to", type: "datetime-local", value: filters.to })),
    h("button", { type: "submit", text: "Apply" }),
    h("a", { href: "#/tasks", text: "clear" }),
    h("datalist", { id: "prompt-versions" }),
    h("input", { type: "hidden", name: "limit", value: q.get("limit") ?? "" }),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    location.hash = `#/tasks${query(data)}`;
  });

  const list = table(
    ["task", "agent", "status", "prompt version", "tenant", { text: "steps", class: "num" }, { text: "tokens in / out", class: "num" }, { text: "cost", class: "num" }, "created", { text: "ran", class: "num" }],
    [],
    { id: "task-table" },
  );
  const tbody = list.tBodies[0];
  const status = h("div", { class: "note", id: "task-list-status" });
  const more = h("button", { type: "button", class: "quiet", id: "load-more", text: "Load more", hidden: true });
  const errors = h("div");
  main.append(
    h("h1", null, "Tasks", h("button", { type: "button", class: "quiet", text: "Refresh", onclick: () => location.reload() })),
    form,
    errors,
    list,
    status,
    more,
  );

  void fillAgents(agentSelect, form.querySelector("#prompt-versions"), filters.agent, signal);

  let cursor = null;
  let read = 0;
  let shown = 0;
  let done = false;
  async function load() {
    more.disabled = true;
    fill(errors);
    try {
      for (let pages = 0, added = 0; pages < MAX_PAGES_PER_LOAD && added < pageSize && !done; pages++) {
        const page = await api(`/v1/tasks${query({ status: filters.status, agent: filters.agent, limit: pageSize, cursor })}`, { signal });
        read += page.tasks.length;
        for (const t of page.tasks) {
          if (from !== null && Date.parse(t.created_at) < from) {
            done = true;
            break;
          }
          if (!local(t)) continue;
          tbody.append(row(t));
          added++;
          shown++;
        }
        cursor = page.next_cursor;
        if (cursor === null) done = true;
      }
    } catch (err) {
      if (signal.aborted) return;
      fill(errors, errorBox(err));
    }
    more.hidden = done;
    more.disabled = false;
    const filtered = filters.prompt || filters.from || filters.to ? ` (${num(read)} read; prompt version and time range are applied in the browser)` : "";
    status.textContent = `${num(shown)} task${shown === 1 ? "" : "s"} shown${filtered}${done ? "; no more" : ""}.`;
  }
  more.addEventListener("click", () => void load());
  void load();
}

function row(t) {
  return h(
    "tr",
    { dataset: { taskId: t.id, status: t.status } },
    td(h("a", { href: `#/task/${t.id}`, class: "mono", text: t.id.slice(0, 8) })),
    td(t.agent),
    td(badge(t.status)),
    td(h("span", { class: "mono", text: t.prompt_version })),
    td(t.tenant),
    td(num(t.steps), "num"),
    td(`${num(t.usage.input_tokens)} / ${num(t.usage.output_tokens)}`, "num"),
    td(usd(t.usage.cost_usd), "num"),
    td(time(t.created_at)),
    td(duration(between(t.started_at, t.finished_at)), "num"),
  );
}

/** The agents (and their prompt versions) to pick from; the list still works when they cannot be read. */
async function fillAgents(select, versions, selected, signal) {
  let agents = [];
  try {
    agents = await api("/v1/agents", { signal });
  } catch {
    // The filter falls back to the one agent named in the address, if any.
  }
  const names = new Set(agents.map((a) => a.name));
  if (selected) names.add(selected);
  for (const name of [...names].sort()) select.append(h("option", { value: name, text: name, selected: name === selected }));
  for (const a of agents) for (const v of a.versions) versions.append(h("option", { value: v.version, text: `${a.name} ${v.origin}` }));
}
