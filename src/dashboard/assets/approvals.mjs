// Approvals inbox: the calls tasks wait on (GET /v1/approvals?status=pending), each with approve and reject
// (POST /v1/tasks/{id}/approval). Read again every 3 s; a card being worked on keeps what was typed in it.

import { api, poll } from "./api.mjs";
import { errorBox, field, fill, flash, h, json, time } from "./dom.mjs";

const EVERY_MS = 3000;

export function render(main, _route, signal) {
  const messages = h("div");
  const list = h("div", { id: "approvals" });
  const empty = h("p", { class: "note", text: "No call is waiting for a decision." });
  main.append(h("h1", { text: "Approvals" }), messages, empty, list);
  const cards = new Map();

  async function decide(a, decision, reason) {
    try {
      const r = await api(`/v1/tasks/${encodeURIComponent(a.task_id)}/approval`, { method: "POST", body: { decision, ...(reason ? { reason } : {}), tool_use_id: a.tool_use.id }, signal });
      fill(messages, flash(`${r.decision === "approve" ? "Approved" : "Rejected"} ${a.tool_use.name} of task ${r.task_id}: the task is ${r.status} again.`));
    } catch (err) {
      if (!signal.aborted) fill(messages, errorBox(err));
    }
    await refresh();
  }

  async function refresh() {
    try {
      const { approvals } = await api("/v1/approvals?status=pending", { signal });
      const seen = new Set();
      for (const a of approvals) {
        const key = `${a.task_id}/${a.tool_use.id}`;
        seen.add(key);
        if (!cards.has(key)) {
          const c = card(a, decide);
          cards.set(key, c);
          list.append(c);
        }
      }
      for (const [key, c] of cards) {
        if (seen.has(key)) continue;
        c.remove();
        cards.delete(key);
      }
      empty.hidden = cards.size > 0;
    } catch (err) {
      if (!signal.aborted) fill(messages, errorBox(err));
    }
  }
  poll(refresh, EVERY_MS, signal);
}

function card(a, decide) {
  const reason = h("input", { size: 40, placeholder: "reason (optional; the model sees it on a reject)", maxlength: 1000 });
  const buttons = [
    h("button", { type: "button", text: "Approve", dataset: { decision: "approve" }, onclick: () => void decide(a, "approve", reason.value.trim()) }),
    h("button", { type: "button", class: "danger", text: "Reject", dataset: { decision: "reject" }, onclick: () => void decide(a, "reject", reason.value.trim()) }),
  ];
  return h(
    "div",
    { class: "panel", dataset: { approvalTask: a.task_id } },
    h("h2", null, "Call ", h("span", { class: "mono", text: a.tool_use.name }), " of task ", h("a", { href: `#/task/${a.task_id}`, class: "mono", text: a.task_id })),
    h(
      "div",
      { class: "fields" },
      field("agent", a.agent),
      field("prompt version", a.prompt_version),
      field("step", String(a.step)),
      field("requested", time(a.requested_at)),
      field("deadline", time(a.deadline)),
      a.tenant ? field("tenant", a.tenant) : null,
    ),
    h("h2", { text: "Input, exactly as the call would be made" }),
    json(a.tool_use.input),
    h("div", { class: "actions" }, reason, buttons),
  );
}
