/**
 * The commands `clawfleet repl` adds to moleculer-repl's own (`call`, `nodes`,
 * `services`, `events`…). Each calls the cluster's actions, the ones the REST
 * API calls, and prints what it got; none keeps state of its own.
 */
import fs from "node:fs";
import type { ServiceBroker } from "moleculer";
import type { ReplConfig } from "../src/config";
import type { AgentSummary, AgentView, DeadLetter, RunningTask, StepRecord, TaskCounts, TaskRecord, ToolSpec } from "../src/contracts";
import type { SetSwitchParams, Switch, SwitchChange } from "../src/contracts";
import type { Cancelled, CancelTaskParams } from "../src/contracts";
import type { ApprovalDecided, DecideApprovalParams, ListApprovalsParams, PendingApprovals } from "../src/contracts";
import { ToolServiceMetadataSchema } from "../src/contracts";
import { messageOf } from "../src/errors";
import type { SubmitResult } from "../src/queue/intake";

/** Where the commands print. */
export type ReplOut = (line: string) => void;

/** What moleculer-repl hands an action once our `parse` ran: the operands and the declared options. */
interface Parsed {
  args: string[];
  opts: Record<string, unknown>;
}

/** The part of commander's Command that `parse` reads. */
interface CommandLike {
  args: string[];
  opts(): Record<string, unknown>;
  params?: Parsed;
}

type Run = (broker: ServiceBroker, p: Parsed, out: ReplOut) => Promise<void>;

const NOT_AVAILABLE = "not available in this version of Clawfleet";

/** Aligned columns, for lists. */
export function columns(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  ").trimEnd());
}

const cut = (text: string, max = 200) => (text.length > max ? `${text.slice(0, max)}…` : text);
const json = (v: unknown) => JSON.stringify(v);

function explain(err: unknown): string {
  const e = err as { type?: unknown; name?: unknown; data?: { action?: unknown } };
  if (e.name === "ServiceNotFoundError" || e.name === "ServiceNotAvailableError")
    return `${typeof e.data?.action === "string" ? e.data.action : "the action"} is not reachable: no node of the cluster serves it (is the cluster up, with this TRANSPORTER and CLAWFLEET_NAMESPACE?)`;
  return `${typeof e.type === "string" ? e.type : typeof e.name === "string" ? e.name : "error"}: ${messageOf(err)}`;
}

function limitOf(p: Parsed, def: number): number {
  const n = Number(p.opts.limit ?? def);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1000) : def;
}

const tasks: Run = async (broker, p, out) => {
  const limit = limitOf(p, 20);
  const [counts, running, dead] = await Promise.all([
    broker.call<TaskCounts, object>("checkpoint.countByStatus", {}),
    broker.call<RunningTask[], { limit: number }>("checkpoint.listRunning", { limit }),
    broker.call<DeadLetter[], { limit: number }>("intake.deadLetters", { limit }),
  ]);
  out(`tasks by status: ${Object.entries(counts).map(([s, n]) => `${s} ${n}`).join(", ")}`);
  const views = await Promise.all(running.map((r) => broker.call<TaskRecord | null, { id: string }>("checkpoint.getTask", { id: r.id })));
  out(`running (${running.length}${running.length === limit ? `, first ${limit}` : ""}):`);
  const rows = views.flatMap((t) => (t ? [[`  ${t.id}`, t.agent, `step ${t.steps}`, `attempt ${t.attempts}`, `since ${t.started_at ?? "?"}`]] : []));
  for (const line of columns(rows)) out(line);
  out(`failed for good (dead letters, ${dead.length}${dead.length === limit ? `, newest ${limit}` : ""}):`);
  for (const line of columns(dead.map((d) => [`  ${d.task_id}`, d.agent, `attempts ${d.attempts}`, cut(`${d.error.type}: ${d.error.message}`, 120)]))) out(line);
};

const task: Run = async (broker, p, out) => {
  const id = p.args[0] ?? "";
  const [t, steps] = await Promise.all([
    broker.call<TaskRecord | null, { id: string }>("checkpoint.getTask", { id }),
    broker.call<StepRecord[], { taskId: string }>("checkpoint.listSteps", { taskId: id }),
  ]);
  if (!t) return out(`no task ${id}`);
  if (p.opts.json === true) return out(JSON.stringify({ ...t, step_records: steps }, null, 2));
  out(`${t.id}  ${t.agent}  ${t.status}  prompt ${t.prompt_version}`);
  out(`  attempts ${t.attempts}, steps ${t.steps}, tokens in ${t.usage.input_tokens} / out ${t.usage.output_tokens}, cost $${t.usage.cost_usd.toFixed(6)}`);
  out(`  created ${t.created_at}, started ${t.started_at ?? "-"}, finished ${t.finished_at ?? "-"}`);
  out(`  input  ${cut(json(t.input))}`);
  if (t.result !== null && t.result !== undefined) out(`  result ${cut(json(t.result))}`);
  if (t.error) out(`  error  ${t.error.type}: ${cut(t.error.message)}`);
  const rows = steps.map((s) =>
    s.kind === "llm"
      ? [`  ${s.step}`, "llm", `${s.data.model} ${s.data.stop_reason ?? ""}`.trim(), `${s.data.duration_ms} ms`, `in ${s.data.usage.input_tokens} out ${s.data.usage.output_tokens}`]
      : [`  ${s.step}`, "tool", `${s.data.tool} ${s.data.ok ? "ok" : "failed"}`, `${s.data.duration_ms} ms`, cut(json(s.data.input), 80)],
  );
  for (const line of columns(rows)) out(line);
};

const submit: Run = async (broker, p, out) => {
  const [agent, ...rest] = p.args;
  const raw = rest.join(" ");
  let input: unknown = raw;
  try {
    input = JSON.parse(raw);
  } catch {
    out(`(input is not JSON: sent as the string ${json(raw)})`);
  }
  const body = { agent, input, ...(typeof p.opts.priority === "string" ? { priority: p.opts.priority } : {}) };
  const key = typeof p.opts.key === "string" ? p.opts.key : undefined;
  const r = await broker.call<SubmitResult, { body: unknown; idempotencyKey?: string }>("intake.submit", { body, ...(key !== undefined ? { idempotencyKey: key } : {}) });
  out(r.created ? `queued ${r.id}` : `${r.id} (the task this Idempotency-Key already names; status ${r.status})`);
};

/**
 * One line per agent (its stable version, default tier and tools); below it, for an agent with more than one
 * version or a canary, its canary (state, share, step, the judge's state) and its versions with their tasks.
 */
const agents: Run = async (broker, _p, out) => {
  const list = await broker.call<AgentView[], object>("intake.listAgents", {});
  if (list.length === 0) return out("no agents");
  const rows = list.map((a) => [a.name, a.stable_version, `${a.default_tier}: ${a.tiers[a.default_tier] ?? "?"}`, `tools ${[...a.tools, ...a.mcp_servers.map((s) => `${s}__*`)].join(", ") || "-"}`]);
  const lines = columns(rows);
  list.forEach((a, i) => {
    out(lines[i] ?? a.name);
    const c = a.canary;
    if (c) {
      out(`  canary ${c.version} ${c.state}${c.state === "running" ? ` at ${c.weight}%` : ""}, step ${c.step} of ${c.steps.length} (${c.steps.join(", ")} %; ${c.min_tasks_per_step} tasks a step), started ${c.started_at ?? "-"}${c.decided_at ? `, decided ${c.decided_at}` : ""}`);
      const judge = c.evidence?.judge;
      if (judge !== undefined) out(`  judge ${cut(json(judge), 300)}`);
    }
    if (a.versions.length > 1 || c || a.stable_version !== a.file_version) {
      const marks = (v: string) => [v === a.stable_version ? "stable" : "", v === a.file_version ? "files" : "", v === c?.version ? "canary" : ""].filter(Boolean).join(", ");
      for (const line of columns(a.versions.map((v) => [`    ${v.version}`, v.origin, `${v.tasks} task${v.tasks === 1 ? "" : "s"}`, `first seen ${v.first_seen}`, marks(v.version)]))) out(line);
    }
  });
};

/** The tool services the REPL's registry knows of (`ClawfleetTools`), by tool name: the action and its nodes. */
function toolServices(broker: ServiceBroker): Map<string, { action: string; nodes: Set<string>; sideEffect: boolean }> {
  const found = new Map<string, { action: string; nodes: Set<string>; sideEffect: boolean }>();
  const services = broker.registry.getServiceList({ onlyAvailable: true, withActions: false }) as unknown as Array<{ nodeID: string; metadata?: Record<string, unknown> }>;
  for (const s of services) {
    const meta = ToolServiceMetadataSchema.safeParse(s.metadata?.clawfleet);
    if (!meta.success) continue;
    for (const t of meta.data.tools) {
      const entry = found.get(t.name) ?? { action: t.action, nodes: new Set<string>(), sideEffect: t.sideEffect };
      entry.nodes.add(s.nodeID);
      found.set(t.name, entry);
    }
  }
  return found;
}

const tools: Run = async (broker, p, out) => {
  const all = await broker.call<AgentSummary[], object>("intake.agents", {});
  const wanted = p.args[0];
  const picked = wanted === undefined ? all : all.filter((a) => a.name === wanted);
  if (picked.length === 0) return out(wanted === undefined ? "no agents" : `no agent ${wanted}`);
  const services = toolServices(broker);
  for (const a of picked) {
    const names = [...a.tools, ...a.mcp_servers.map((s) => `${s}__*`)];
    const specs = await broker.call<ToolSpec[], { agent: string; names: string[] }>("executor.specs", { agent: a.name, names });
    out(`${a.name} (${specs.length} tool${specs.length === 1 ? "" : "s"} offered):`);
    const rows = specs.map((s) => {
      const svc = services.get(s.name);
      const where = svc ? `${svc.action} on ${[...svc.nodes].join(", ")}${svc.sideEffect ? " (side effect)" : ""}` : "executor";
      return [`  ${s.name}`, where, cut(s.description.split("\n")[0] ?? "", 80)];
    });
    for (const line of columns(rows)) out(line);
    const missing = a.tools.filter((n) => !specs.some((s) => s.name === n));
    if (missing.length > 0) out(`  not found anywhere in the cluster: ${missing.join(", ")}`);
  }
};

/** Cancels a task (intake's action, as POST /v1/tasks/{id}/cancel calls it), as `repl:<node id>`. */
const cancel: Run = async (broker, p, out) => {
  const id = p.args[0] ?? "";
  const reason = typeof p.opts.reason === "string" ? p.opts.reason : undefined;
  const r = await broker.call<Cancelled, CancelTaskParams>("intake.cancelTask", { taskId: id, by: `repl:${broker.nodeID}`, ...(reason !== undefined ? { reason } : {}) });
  out(`${r.id} cancelled`);
};

/**
 * Approval gates (intake's actions, as GET /v1/approvals and POST /v1/tasks/{id}/approval call them): without
 * an id, the calls tasks wait on; with one, a decision on that task's call, as `repl:<node id>`.
 */
const approve: Run = async (broker, p, out) => {
  const id = p.args[0];
  if (id === undefined) {
    const { approvals } = await broker.call<PendingApprovals, ListApprovalsParams>("intake.approvals", { query: { limit: limitOf(p, 20) } });
    if (approvals.length === 0) return out("no task is waiting for a decision");
    out(`waiting for a decision (${approvals.length}):`);
    const rows = approvals.map((a) => [`  ${a.task_id}`, a.agent, `step ${a.step}`, `${a.tool_use.name} ${cut(json(a.tool_use.input), 80)}`, `until ${a.deadline}`]);
    for (const line of columns(rows)) out(line);
    return;
  }
  const reason = typeof p.opts.reason === "string" ? p.opts.reason : undefined;
  const body = { decision: p.opts.reject === true ? "reject" : "approve", ...(reason !== undefined ? { reason } : {}) };
  const r = await broker.call<ApprovalDecided, DecideApprovalParams>("intake.decideApproval", { taskId: id, body, by: `repl:${broker.nodeID}` });
  out(`${r.task_id}: ${r.decision === "approve" ? "approved" : "rejected"}; the task is ${r.status} again`);
};

const SWITCHES_USAGE = "usage: switches | switches pause <kind> <name> [--abort] | switches lift <kind> <name>   (kind: agent, tool, model or prompt)";

/** The kill switches (intake's actions, as PUT /v1/switches calls them), changed as `repl:<node id>`. */
const switches: Run = async (broker, p, out) => {
  const [action, kind, name] = p.args;
  if (action === undefined) {
    const [all, changes] = await Promise.all([
      broker.call<Switch[], object>("intake.switches", {}),
      broker.call<SwitchChange[], { limit: number }>("intake.switchChanges", { limit: limitOf(p, 10) }),
    ]);
    const paused = all.filter((s) => s.paused);
    out(paused.length === 0 ? "no switch is paused" : `paused (${paused.length}):`);
    for (const line of columns(paused.map((s) => [`  ${s.kind}`, s.name, s.in_flight, `by ${s.updated_by}`, `since ${s.updated_at}`]))) out(line);
    out(`latest changes (${changes.length}):`);
    for (const line of columns(changes.map((c) => [`  ${c.at}`, `${c.kind} ${c.name}`, c.paused ? `paused (${c.in_flight})` : "lifted", `by ${c.by}`]))) out(line);
    return;
  }
  if ((action !== "pause" && action !== "lift") || kind === undefined || name === undefined) return out(SWITCHES_USAGE);
  const body = action === "pause" ? { paused: true, in_flight: p.opts.abort === true ? "abort" : "drain" } : { paused: false };
  const sw = await broker.call<Switch, SetSwitchParams>("intake.setSwitch", { kind, name, body, by: `repl:${broker.nodeID}` });
  out(`${sw.kind} ${sw.name}: ${sw.paused ? `paused (${sw.in_flight})` : "lifted"}, change ${sw.version} of this switch`);
};

const CANARY_USAGE = "usage: canary start <agent> <agent file> [--steps 5,25,50,100] [--min-tasks n] | canary abort <agent>";

/** Starts or aborts an agent's canary (intake's actions, as POST and DELETE /v1/agents/{name}/canary call them), as `repl:<node id>`. */
const canary: Run = async (broker, p, out) => {
  const [action, name, file] = p.args;
  const by = `repl:${broker.nodeID}`;
  if (action === "abort" && name !== undefined) {
    const view = await broker.call<AgentView, object>("intake.abortCanary", { name, by });
    return out(`${view.name}: canary aborted; stable ${view.stable_version}`);
  }
  if (action !== "start" || name === undefined || file === undefined) return out(CANARY_USAGE);
  const steps = typeof p.opts.steps === "string" ? p.opts.steps.split(",").map(Number) : undefined;
  const minTasks = typeof p.opts.minTasks === "string" ? Number(p.opts.minTasks) : undefined;
  const body = { prompt: fs.readFileSync(file, "utf8"), ...(steps ? { steps } : {}), ...(minTasks !== undefined ? { min_tasks_per_step: minTasks } : {}) };
  const view = await broker.call<AgentView, object>("intake.startCanary", { name, body, by });
  out(`${view.name}: canary ${view.canary?.version ?? "?"} at ${view.canary?.weight ?? 0}% of new tasks; stable ${view.stable_version}`);
};

function limitsCommand(config: Pick<ReplConfig, "rateLimits"> | undefined): Run {
  return async (_broker, _p, out) => {
    if (!config) return out(`limits: ${NOT_AVAILABLE} on a REPL attached to a node in code`);
    const { limits, windowMs, maxWaitMs } = config.rateLimits;
    out(`configured limits (CLAWFLEET_RATE_LIMITS as this REPL's environment has it), per ${windowMs} ms window; callers wait up to ${maxWaitMs} ms:`);
    const models = Object.entries(limits);
    if (models.length === 0) out("  none configured: the gateway applies the limits the provider reports in its anthropic-ratelimit-* headers");
    for (const [model, l] of models) {
      out(`  ${model}: ${json({ rpm: l.rpm, itpm: l.itpm, otpm: l.otpm })}`);
      for (const [tier, t] of Object.entries(l.tiers ?? {})) out(`    tier ${tier}: ${json(t)}`);
    }
  };
}

/** A command as moleculer-repl 0.7 takes it (its `CustomCommand`, which its typings do not export). */
export interface CustomCommand {
  command: string;
  description: string | null;
  alias: string[] | string | null;
  allowUnknownOptions: boolean | null;
  parse: ((this: unknown, cmd: CommandLike) => void) | null;
  options: Array<{ option: string; description: string }>;
  action: (broker: ServiceBroker, params: Parsed) => Promise<void>;
}

interface Definition {
  command: string;
  description: string;
  options?: Array<{ option: string; description: string }>;
  run: Run;
}

function definitions(config: Pick<ReplConfig, "rateLimits"> | undefined): Definition[] {
  return [
    { command: "tasks", description: "Tasks by status, the running ones and the dead letters", options: [{ option: "--limit <n>", description: "at most n of each list (20)" }], run: tasks },
    { command: "task <id>", description: "A task: status, usage, input, result and its steps", options: [{ option: "--json", description: "the raw task and steps" }], run: task },
    {
      command: "submit <agent> <input>",
      description: "Submit a task: submit my-agent '{\"text\": \"hello\"}' (input that is not JSON is sent as a string)",
      options: [
        { option: "--priority <p>", description: "high, normal or low" },
        { option: "--key <key>", description: "Idempotency-Key" },
      ],
      run: submit,
    },
    {
      command: "cancel <id>",
      description: "Cancel a task that has not finished: it ends cancelled, a model call in flight is aborted, no tool starts after",
      options: [{ option: "--reason <text>", description: "why, kept with the task" }],
      run: cancel,
    },
    {
      command: "approve [id]",
      description: "Approve the call a task waits on (it runs as the model asked for it); without an id, the tasks waiting for a decision",
      options: [
        { option: "--reject", description: "reject it instead: the model is told, with the reason" },
        { option: "--reason <text>", description: "why (a rejection's reason is what the model sees)" },
        { option: "--limit <n>", description: "without an id: at most n (20)" },
      ],
      run: approve,
    },
    { command: "agents", description: "The agents the cluster accepts tasks for: stable version, canary and the judge's state, versions with their tasks", run: agents },
    { command: "tools [agent]", description: "The tools each agent is offered, and where they run", run: tools },
    { command: "limits", description: "The rate limits per model and tier", run: limitsCommand(config) },
    {
      command: "canary <action> <agent> [file]",
      description: "Start a canary of an agent from an agent file (`canary start <agent> <file>`), promoted or rolled back by the judge; or abort it (`canary abort <agent>`)",
      options: [
        { option: "--steps <list>", description: "start: the weights, in percent (5,25,50,100)" },
        { option: "--min-tasks <n>", description: "start: finished canary tasks per step before a promotion (100)" },
      ],
      run: canary,
    },
    {
      command: "switches [action] [kind] [name]",
      description: "Kill switches: the paused ones and the latest changes; `switches pause <kind> <name>` or `switches lift <kind> <name>`",
      options: [
        { option: "--abort", description: "pause: cancel the running work of the scope too (default: let it finish)" },
        { option: "--limit <n>", description: "the latest n changes (10)" },
      ],
      run: switches,
    },
  ];
}

/**
 * The commands as moleculer-repl takes them. `config`: the REPL's settings (for `limits`); `out`: where they
 * print (stdout by default).
 */
export function clawfleetCommands(config?: Pick<ReplConfig, "rateLimits">, out: ReplOut = (line) => process.stdout.write(`${line}\n`)): CustomCommand[] {
  return definitions(config).map(
    (d): CustomCommand => ({
      command: d.command,
      description: d.description,
      alias: null,
      allowUnknownOptions: true,
      options: d.options ?? [],
      // Operands as typed (quotes already taken off by the REPL), options as declared: each command reads its own.
      parse(this: unknown, cmd: CommandLike) {
        cmd.params = { args: [...cmd.args], opts: { ...cmd.opts() } };
      },
      action: async (broker: ServiceBroker, params: Parsed) => {
        try {
          await d.run(broker, params, out);
        } catch (err) {
          out(`error: ${explain(err)}`);
        }
      },
    }),
  );
}
