// One task: its fields, input, result or error, usage, and the step timeline, which follows the task live
// (GET /v1/tasks/{id}/events) while it has not ended. The steps are read a page at a time: the first page is
// drawn at once, the scroll sized from the task's step count, and the rest are read one after another in
// the background. Step n's event id is 4n, so the stream is opened after the last step the pages showed and
// sends only what came since.

import { api } from "./api.mjs";
import { FIRST_PAGE, readStepsPage, takeEarlySteps } from "./boot.mjs";
import { badge, between, duration, errorBox, field, fill, flash, h, json, num, table, td, time, usd } from "./dom.mjs";
import { followTask } from "./stream.mjs";
import { textOf, Timeline } from "./timeline.mjs";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
/** A step event refreshes the task's fields (usage, status) at most this often. */
const REFRESH_MS = 1000;
/** Steps per page read after the first (the most the route answers). */
const PAGE = 1000;

export function render(main, { id }, signal) {
  const title = h("h1", null, "Task ", h("span", { class: "mono", text: id }));
  const messages = h("div");
  const summary = h("div");
  const detail = h("div", { class: "step-detail" });
  const liveNote = h("span", { class: "note", id: "live-state" });
  const timeline = new Timeline((step) => fill(detail, stepDetail(step)));
  main.append(title, messages, summary, h("h2", null, "Steps ", liveNote), timeline.element, detail);

  let refreshTimer = null;
  const refresh = async () => {
    refreshTimer = null;
    try {
      const task = await api(`/v1/tasks/${encodeURIComponent(id)}`, { signal });
      timeline.setTotal(task.steps);
      fill(summary, ...taskSummary(task, act));
    } catch (err) {
      if (!signal.aborted) fill(messages, errorBox(err));
    }
  };
  const refreshSoon = () => {
    if (refreshTimer === null) refreshTimer = setTimeout(() => void refresh(), REFRESH_MS);
  };
  signal.addEventListener("abort", () => clearTimeout(refreshTimer), { once: true });

  async function act(what, path, body) {
    try {
      const r = await api(path, { method: "POST", body, signal });
      fill(messages, flash(`${what}: ${JSON.stringify(r)}`));
      await refresh();
    } catch (err) {
      if (!signal.aborted) fill(messages, errorBox(err));
    }
  }

  void (async () => {
    // The first page of steps first, alone: it is the first screen and says the task's status; the task's
    // own read (its step count sizes the timeline) and the other pages come after it.
    let steps;
    try {
      steps = await (takeEarlySteps(id) ?? readStepsPage(id, 0, FIRST_PAGE, signal));
      timeline.setSteps(steps.steps);
      // A long task opens on its first rows, not on the placeholders at its end.
      if (steps.next_after) timeline.follow = false;
      void refresh();
      while (steps.next_after) {
        steps = await readStepsPage(id, steps.next_after, PAGE, signal);
        for (const s of steps.steps) timeline.add(s);
      }
    } catch (err) {
      if (!signal.aborted) fill(messages, errorBox(err));
      return;
    }
    if (TERMINAL.has(steps.status)) {
      liveNote.textContent = `${num(timeline.length)} steps; the task has ended.`;
      return;
    }
    fill(liveNote, badge("live"), " following the task's events");
    followTask(id, timeline.lastStep > 0 ? 4 * timeline.lastStep : null, {
      signal,
      onEvent(name, data) {
        if (name === "step") {
          timeline.add(data);
          refreshSoon();
        } else if (name === "reset") {
          timeline.setTotal(0);
          timeline.setSteps([]);
        } else if (name === "awaiting_approval") {
          fill(liveNote, badge("awaiting_approval"), " waiting for an operator: ", h("a", { href: "#/approvals", text: "approvals" }));
          void refresh();
        } else {
          fill(liveNote, badge(name), ` the task has ended after ${num(timeline.length)} steps.`);
          void refresh();
        }
      },
      onError(err) {
        fill(liveNote, errorBox(err));
      },
    });
  })();
}

function taskSummary(t, act) {
  const ended = TERMINAL.has(t.status);
  const actions = h(
    "div",
    { class: "actions" },
    !ended ? h("button", { type: "button", class: "danger", text: "Cancel task", onclick: () => void act("cancelled", `/v1/tasks/${t.id}/cancel`, {}) }) : null,
    t.status === "failed" ? h("button", { type: "button", text: "Redrive", onclick: () => void act("redriven", `/v1/tasks/${t.id}/redrive`) }) : null,
  );
  const byModel = Object.entries(t.usage.by_model ?? {});
  return [
    h(
      "div",
      { class: "panel" },
      h(
        "div",
        { class: "fields", id: "task-fields", dataset: { status: t.status } },
        field("status", badge(t.status)),
        field("agent", t.agent),
        field("prompt version", t.prompt_version),
        field("tenant", t.tenant),
        field("priority", t.priority),
        field("attempts", num(t.attempts)),
        field("steps", num(t.steps)),
        field("created", time(t.created_at)),
        field("started", time(t.started_at)),
        field("finished", time(t.finished_at)),
        field("ran for", duration(between(t.started_at, t.finished_at))),
        field("tokens in / out", `${num(t.usage.input_tokens)} / ${num(t.usage.output_tokens)}`),
        field("cache reads", num(t.usage.cache_read_input_tokens)),
        field("cost", usd(t.usage.cost_usd)),
        t.cancelled_by ? field("cancelled by", `${t.cancelled_by}${t.cancel_reason ? `: ${t.cancel_reason}` : ""}`) : null,
        t.budget_exhausted ? field("budget exhausted", t.budget_exhausted) : null,
      ),
      actions,
    ),
    byModel.length > 0
      ? table(
          ["model", { text: "calls", class: "num" }, { text: "tokens in", class: "num" }, { text: "out", class: "num" }, { text: "cache reads", class: "num" }, { text: "cost", class: "num" }],
          byModel.map(([model, u]) =>
            h("tr", null, td(model), td(num(u.calls), "num"), td(num(u.input_tokens), "num"), td(num(u.output_tokens), "num"), td(num(u.cache_read_input_tokens), "num"), td(usd(u.cost_usd), "num")),
          ),
          { class: "panel" },
        )
      : null,
    h("h2", { text: "Input" }),
    json(t.input),
    t.error ? h("h2", { text: "Error" }) : null,
    t.error ? errorBox(t.error) : null,
    t.result !== null && t.result !== undefined ? h("h2", { text: "Result" }) : null,
    t.result !== null && t.result !== undefined ? json(t.result) : null,
    t.budgets ? h("details", null, h("summary", { text: "Budgets" }), json(t.budgets)) : null,
    t.webhook ? h("details", null, h("summary", { text: "Webhook" }), json(t.webhook)) : null,
  ];
}

function stepDetail(s) {
  const head = h("h2", { text: `Step ${s.step}: ${s.kind === "llm" ? `${s.model} (${s.tier})` : s.tool}` });
  if (s.kind === "llm") {
    return h(
      "div",
      { class: "panel", id: "step-detail" },
      head,
      h(
        "div",
        { class: "fields" },
        field("stop reason", s.stop_reason),
        field("duration", duration(s.duration_ms)),
        field("tokens in / out", `${num(s.usage.input_tokens)} / ${num(s.usage.output_tokens)}`),
        field("cache read / written", `${num(s.usage.cache_read_input_tokens)} / ${num(s.usage.cache_creation_input_tokens)}`),
        field("cost", usd(s.usage.cost_usd)),
        field("at", time(s.created_at)),
        s.budget_exhausted ? field("budget exhausted", s.budget_exhausted) : null,
      ),
      h("p", { text: textOf(s.content) }),
      h("details", null, h("summary", { text: "content" }), json(s.content)),
    );
  }
  return h(
    "div",
    { class: "panel", id: "step-detail" },
    head,
    h("div", { class: "fields" }, field("result", badge(s.ok ? "ok" : "error", s.ok ? "ok" : "bad")), field("duration", duration(s.duration_ms)), field("tool use id", s.tool_use_id), field("at", time(s.created_at))),
    h("h2", { text: "Input" }),
    json(s.input),
    h("h2", { text: "Output" }),
    json(s.output),
  );
}
