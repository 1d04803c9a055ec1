/* global document, requestAnimationFrame, Element */
// A task's step timeline. Every row has the same height and only the rows in view (and a few around them)
// are in the DOM, so a task of 10,000 steps costs what one of 60 does; appending a step is O(1) until paint,
// and paints are batched to one per animation frame.
//
// The steps may arrive a page at a time: `setTotal` sizes the scroll from the task's step count, and a row
// not loaded yet shows a placeholder until its page comes.
//
// Each paint sets `data-rendered-steps` (the steps loaded) and `data-total-steps` (the rows) on the timeline
// and a `timeline-rendered` performance mark (`detail.steps`, `detail.total`), so the time from navigation
// to the first screen, and to every step loaded, can be read in the browser.

import { duration, h, num, snippet, usd } from "./dom.mjs";

const ROW_HEIGHT = 28;
const OVERSCAN = 12;

export class Timeline {
  /** `onSelect(step)` is called when a row is clicked. */
  constructor(onSelect) {
    this.steps = [];
    this.total = 0;
    this.byNumber = new Map();
    this.selected = null;
    this.follow = true;
    this.pending = false;
    this.onSelect = onSelect;
    this.spacer = h("div", { class: "timeline-spacer" });
    this.rows = h("div", { class: "timeline-rows" });
    this.viewport = h("div", { class: "timeline-viewport", tabindex: "0", dataset: { renderedSteps: "0" } }, this.spacer, this.rows);
    this.viewport.addEventListener("scroll", () => {
      const v = this.viewport;
      this.follow = v.scrollTop + v.clientHeight >= v.scrollHeight - ROW_HEIGHT;
      this.schedule();
    });
    this.rows.addEventListener("click", (e) => {
      const row = e.target instanceof Element ? e.target.closest(".timeline-row") : null;
      const step = row ? this.byNumber.get(Number(row.dataset.step)) : undefined;
      if (!step) return;
      this.selected = step.step;
      this.onSelect(step);
      this.schedule();
    });
    this.element = h(
      "div",
      { class: "timeline" },
      h("div", { class: "timeline-head" }, ["#", "kind", "model / tool", "tier", "tokens in", "out", "cache", "cost", "duration", "stop / result"].map((t) => h("span", { text: t }))),
      this.viewport,
    );
  }

  get length() {
    return this.steps.length;
  }

  /** The highest step number shown (0 when none). */
  get lastStep() {
    return this.steps.length === 0 ? 0 : this.steps[this.steps.length - 1].step;
  }

  /** Replaces every step (a first load, or a stream `reset`). */
  setSteps(steps) {
    this.steps = steps.slice().sort((a, b) => a.step - b.step);
    this.byNumber = new Map(this.steps.map((s) => [s.step, s]));
    this.schedule();
  }

  /** Sizes the timeline for `total` steps (the task's count); the rows past those loaded show placeholders. */
  setTotal(total) {
    if (total === this.total) return;
    this.total = total;
    this.schedule();
  }

  /** Adds a step from a page or the live stream; one already shown is ignored (the stream and the first load may overlap). */
  add(step) {
    if (this.byNumber.has(step.step)) return;
    this.byNumber.set(step.step, step);
    if (step.step > this.lastStep) this.steps.push(step);
    else this.setSteps([...this.steps, step]);
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.paint();
    });
  }

  paint() {
    const loaded = this.steps.length;
    const total = Math.max(loaded, this.total);
    this.spacer.style.height = `${total * ROW_HEIGHT}px`;
    const v = this.viewport;
    if (this.follow) v.scrollTop = v.scrollHeight;
    const height = v.clientHeight || 600;
    const first = Math.max(0, Math.floor(v.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const end = Math.min(total, Math.ceil((v.scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
    const fragment = document.createDocumentFragment();
    for (let i = first; i < end; i++) fragment.append(i < loaded ? this.row(this.steps[i]) : placeholder(i + 1));
    this.rows.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
    this.rows.replaceChildren(fragment);
    v.dataset.renderedSteps = String(loaded);
    v.dataset.totalSteps = String(total);
    v.dataset.lastStep = String(this.lastStep);
    performance.mark("timeline-rendered", { detail: { steps: loaded, total } });
  }

  row(s) {
    const llm = s.kind === "llm";
    const u = llm ? s.usage : null;
    const cls = `timeline-row ${s.kind}${!llm && !s.ok ? " failed-tool" : ""}${this.selected === s.step ? " selected" : ""}`;
    return h(
      "div",
      { class: cls, dataset: { step: String(s.step) } },
      h("span", { class: "n", text: s.step }),
      h("span", { class: "kind", text: s.kind }),
      h("span", { class: "mono", text: llm ? s.model : s.tool }),
      h("span", { text: llm ? s.tier : "" }),
      h("span", { class: "n", text: u ? num(u.input_tokens) : "" }),
      h("span", { class: "n", text: u ? num(u.output_tokens) : "" }),
      h("span", { class: "n", text: u ? num(u.cache_read_input_tokens) : "" }),
      h("span", { class: "n", text: u ? usd(u.cost_usd) : "" }),
      h("span", { class: "n", text: duration(s.duration_ms) }),
      h("span", { class: "mono", text: llm ? `${s.stop_reason ?? ""} ${snippet(textOf(s.content), 120)}` : `${s.ok ? "ok" : "error"} ${snippet(s.output, 120)}` }),
    );
  }
}

/** The row of a step whose page has not come yet. */
function placeholder(n) {
  return h("div", { class: "timeline-row placeholder" }, h("span", { class: "n", text: n }), h("span", { text: "…" }));
}

/** The text an assistant turn said, or the tools it asked for. */
export function textOf(content) {
  const parts = [];
  for (const b of content ?? []) {
    if (b.type === "text") parts.push(b.text);
    else if (b.type === "tool_use") parts.push(`→ ${b.name}(${snippet(b.input, 80)})`);
  }
  return parts.join(" ");
}
