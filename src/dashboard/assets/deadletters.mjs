// Dead letters: the tenant's tasks that failed for good (GET /v1/dead-letters), each with a redrive
// (POST /v1/tasks/{id}/redrive), which puts it back in the queue to resume from its checkpoints.

import { api } from "./api.mjs";
import { errorBox, fill, flash, h, num, table, td, time } from "./dom.mjs";

export function render(main, _route, signal) {
  const messages = h("div");
  const body = h("div", { id: "dead-letters" });
  main.append(h("h1", null, "Dead letters", h("button", { type: "button", class: "quiet", text: "Refresh", onclick: () => void load() })), messages, body);

  async function redrive(id) {
    try {
      const r = await api(`/v1/tasks/${encodeURIComponent(id)}/redrive`, { method: "POST", signal });
      fill(messages, flash(`Task ${r.taskId}: ${r.redriven ? "redriven, queued again" : "not redriven"}.`));
    } catch (err) {
      if (!signal.aborted) fill(messages, errorBox(err));
    }
    await load();
  }

  async function load() {
    try {
      const letters = await api("/v1/dead-letters?limit=500", { signal });
      fill(
        body,
        letters.length === 0
          ? h("p", { class: "note", text: "No dead letter." })
          : table(
              ["task", "agent", "error", { text: "attempts", class: "num" }, "failed", "tenant", ""],
              letters.map((d) =>
                h(
                  "tr",
                  { dataset: { deadLetter: d.task_id } },
                  td(h("a", { href: `#/task/${d.task_id}`, class: "mono", text: d.task_id.slice(0, 8) })),
                  td(d.agent),
                  td(h("span", null, h("code", { text: d.error.type }), `: ${d.error.message}`)),
                  td(num(d.attempts), "num"),
                  td(time(d.created_at)),
                  td(d.tenant),
                  td(h("button", { type: "button", text: "Redrive", onclick: () => void redrive(d.task_id) })),
                ),
              ),
            ),
      );
    } catch (err) {
      if (!signal.aborted) fill(messages, errorBox(err));
    }
  }
  void load();
}
