/** `clawfleet tasks …` and `clawfleet watch`: submitting, reading, listing and operating on tasks. */
import type { Submitted, StepsView, TaskListView, TaskView } from "../../src/contracts";
import { jsonArg, line, positiveInt, stringOpt, UsageError, type ClientIo, type Command } from "./command";
import { between, cell, compact, duration, fields, money, pretty, table, tokens } from "./format";
import { pathOf } from "./http";
import { follow, stepLine } from "./watch";

/** A task's input as given: inline, `@file`, or `-` for stdin; JSON when it parses, else sent as a string. */
export async function readInput(arg: string, io: Pick<ClientIo, "readFile" | "readStdin">): Promise<unknown> {
  let text = arg;
  if (arg === "-") text = await io.readStdin();
  else if (arg.startsWith("@")) {
    try {
      text = await io.readFile(arg.slice(1));
    } catch (err) {
      throw new UsageError(`cannot read the input file ${arg.slice(1)}: ${(err as Error).message}`);
    }
  }
  // A file or a pipe usually ends with a newline that is not part of the input.
  if (arg === "-" || arg.startsWith("@")) text = text.replace(/\r?\n$/, "");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The body of `POST /v1/tasks` from the command line. */
export function submitBody(agent: string, input: unknown, opt: Record<string, string | boolean | undefined>): Record<string, unknown> {
  const priority = stringOpt(opt, "priority");
  const metadata = stringOpt(opt, "metadata");
  const budgets = stringOpt(opt, "budgets");
  return {
    agent,
    input,
    ...(priority !== undefined ? { priority } : {}),
    ...(metadata !== undefined ? { metadata: jsonArg("--metadata", metadata) } : {}),
    ...(budgets !== undefined ? { budgets: jsonArg("--budgets", budgets) } : {}),
  };
}

/** The fields of `GET /v1/tasks/{id}` this view shows by name; any other field is listed after them as it came. */
const SHOWN = new Set(["id", "agent", "status", "priority", "prompt_version", "tenant", "attempts", "steps", "usage", "created_at", "started_at", "finished_at", "error", "input", "metadata", "result"]);

export function taskText(t: TaskView & Record<string, unknown>): string {
  const u = t.usage;
  const pairs: Array<[string, string]> = [
    ["id", t.id],
    ["agent", t.agent],
    ["status", t.status],
    ["priority", t.priority],
    ["prompt", t.prompt_version],
    ["tenant", t.tenant],
    ["attempts", String(t.attempts)],
    ["steps", String(t.steps)],
    ["usage", `${tokens(u.input_tokens, u.output_tokens)} tokens (in/out) · ${money(u.cost_usd)}`],
  ];
  for (const [model, m] of Object.entries(u.by_model ?? {})) pairs.push(["", `${model}: ${m.calls} calls · ${tokens(m.input_tokens, m.output_tokens)} · ${money(m.cost_usd)}`]);
  const took = between(t.started_at ?? t.created_at, t.finished_at);
  pairs.push(["created", t.created_at], ["started", t.started_at ?? "-"], ["finished", `${t.finished_at ?? "-"}${took !== undefined ? ` (${duration(took)})` : ""}`]);
  for (const [k, v] of Object.entries(t)) if (!SHOWN.has(k) && v !== undefined && v !== null) pairs.push([k.replace(/_/g, " "), cell(v, 200)]);
  if (t.error) pairs.push(["error", `${t.error.type}: ${t.error.message}`]);
  pairs.push(["input", compact(t.input, 200)]);
  if (Object.keys(t.metadata).length > 0) pairs.push(["metadata", compact(t.metadata, 200)]);
  if (t.result !== null) pairs.push(["result", pretty(t.result)]);
  return fields(pairs);
}

export function stepsText(v: StepsView): string {
  if (v.steps.length === 0) return `no steps yet (task ${v.status})`;
  return v.steps.map(stepLine).join("\n");
}

export function taskListText(v: TaskListView): string {
  if (v.tasks.length === 0) return "no tasks";
  return table(
    ["ID", "AGENT", "STATUS", "STEPS", "TOKENS", "COST", "CREATED"],
    v.tasks.map((t) => [t.id, t.agent, t.status, String(t.steps), tokens(t.usage.input_tokens, t.usage.output_tokens), money(t.usage.cost_usd), t.created_at]),
  );
}

const taskId = { args: "<id>", arity: [1, 1] as const };

export const TASK_COMMANDS: readonly Command[] = [
  {
    name: "tasks submit",
    args: "<agent> <input-json|@file|->",
    summary: "submit a task",
    details:
      "<input> is JSON ('{\"order_id\": \"ORD-1042\"}') or else sent as a string; @file reads it from a file, - from stdin.\n" +
      "Prints the task's id (with --json, the API's answer). With --wait it then follows the task as `watch` does\n" +
      "and exits as the task ended: 0 succeeded, 1 failed, 2 cancelled.",
    arity: [2, 2],
    options: {
      priority: { type: "string", value: "p", help: "high, normal or low (default normal)" },
      "idempotency-key": { type: "string", value: "k", help: "the same key within 24 h answers the same task" },
      metadata: { type: "string", value: "json", help: "free-form labels kept with the task (a JSON object)" },
      budgets: { type: "string", value: "json", help: "the task's budgets (a JSON object), where the cluster takes them" },
      wait: { type: "boolean", help: "follow the task until it ends" },
    },
    async run(c) {
      const [agent = "", inputArg = ""] = c.args;
      const body = submitBody(agent, await readInput(inputArg, c.io), c.opt);
      const key = stringOpt(c.opt, "idempotency-key");
      const r = await c.api.post<Submitted>("/v1/tasks", body, key !== undefined ? { headers: { "Idempotency-Key": key } } : {});
      if (c.opt.wait !== true) {
        c.io.out(line(c.json ? r.text : r.body.id));
        return 0;
      }
      c.io.out(line(c.json || !c.io.isTTY ? r.text : `task ${r.body.id} ${r.body.status}`));
      return follow(c, r.body.id);
    },
  },
  {
    name: "tasks get",
    ...taskId,
    summary: "a task: status, usage, input, result or error",
    async run(c) {
      const r = await c.api.get<TaskView & Record<string, unknown>>(pathOf("/v1/tasks", c.args[0] ?? ""));
      c.io.out(line(c.json ? r.text : taskText(r.body)));
      return 0;
    },
  },
  {
    name: "tasks steps",
    ...taskId,
    summary: "a task's model and tool steps, in order",
    async run(c) {
      const r = await c.api.get<StepsView>(pathOf("/v1/tasks", c.args[0] ?? "", "steps"));
      c.io.out(line(c.json ? r.text : stepsText(r.body)));
      return 0;
    },
  },
  {
    name: "tasks ls",
    summary: "the tenant's tasks, newest first, a page at a time",
    details: "When there are more, the command for the next page is printed on stderr.",
    arity: [0, 0],
    options: {
      status: { type: "string", value: "s", help: "only tasks in this status" },
      agent: { type: "string", value: "a", help: "only tasks of this agent" },
      limit: { type: "string", value: "n", help: "tasks per page (default 50, at most 1000)" },
      cursor: { type: "string", value: "c", help: "the page after the one that printed this cursor" },
    },
    async run(c) {
      const query = {
        status: stringOpt(c.opt, "status"),
        agent: stringOpt(c.opt, "agent"),
        limit: positiveInt("--limit", stringOpt(c.opt, "limit")),
        cursor: stringOpt(c.opt, "cursor"),
      };
      const r = await c.api.get<TaskListView>("/v1/tasks", { query });
      if (c.json) {
        c.io.out(line(r.text));
        return 0;
      }
      c.io.out(line(taskListText(r.body)));
      if (r.body.next_cursor !== null) {
        const again = [
          "clawfleet tasks ls",
          ...(query.status !== undefined ? [`--status ${query.status}`] : []),
          ...(query.agent !== undefined ? [`--agent ${query.agent}`] : []),
          ...(query.limit !== undefined ? [`--limit ${query.limit}`] : []),
          `--cursor ${r.body.next_cursor}`,
        ];
        c.io.err(line(`more: ${again.join(" ")}`));
      }
      return 0;
    },
  },
  {
    name: "tasks cancel",
    ...taskId,
    summary: "cancel a task: it ends cancelled; an in-flight model call is aborted",
    options: { reason: { type: "string", value: "r", help: "why, kept with the cancellation" } },
    async run(c) {
      const reason = stringOpt(c.opt, "reason");
      const r = await c.api.post<{ id: string; status: string }>(pathOf("/v1/tasks", c.args[0] ?? "", "cancel"), reason !== undefined ? { reason } : undefined);
      c.io.out(line(c.json ? r.text : `${r.body.id} ${r.body.status}`));
      return 0;
    },
  },
  {
    name: "tasks approve",
    ...taskId,
    summary: "decide a task's pending tool call: approve it (or --reject it)",
    options: {
      reject: { type: "boolean", help: "reject the call: the model gets an error tool_result" },
      reason: { type: "string", value: "r", help: "why, kept with the decision" },
    },
    async run(c) {
      const reason = stringOpt(c.opt, "reason");
      const body = { decision: c.opt.reject === true ? "reject" : "approve", ...(reason !== undefined ? { reason } : {}) };
      const r = await c.api.post<{ task_id: string; decision: string; status: string }>(pathOf("/v1/tasks", c.args[0] ?? "", "approval"), body);
      c.io.out(line(c.json ? r.text : `${r.body.task_id} ${r.body.decision}d; task ${r.body.status}`));
      return 0;
    },
  },
  {
    name: "tasks redrive",
    ...taskId,
    summary: "put a failed task back in the queue; it resumes from its checkpoints",
    async run(c) {
      const r = await c.api.post<{ taskId: string; redriven: boolean }>(pathOf("/v1/tasks", c.args[0] ?? "", "redrive"), undefined);
      c.io.out(line(c.json ? r.text : `${r.body.taskId} ${r.body.redriven ? "redriven" : "not redriven"}`));
      return 0;
    },
  },
  {
    name: "watch",
    ...taskId,
    summary: "follow a task until it ends; exit 0 succeeded, 1 failed, 2 cancelled",
    details:
      "On a terminal: each new step as a line, under a one-line progress display (step, status, tokens, cost, time).\n" +
      "Elsewhere, or with --json: JSON lines, the API's own objects: the task whenever its status changes, each new\n" +
      "step, and the task as it ended, last.",
    async run(c) {
      return follow(c, c.args[0] ?? "");
    },
  },
];
