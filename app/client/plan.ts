/**
 * `clawfleet plan`: the capacity planner. From a load and the provider's limits it
 * prints each limit's headroom, the planners, executors, gateways and checkpoint
 * writers that carry the load, the queueing delay and the cost per day, and says plainly when a limit
 * cannot carry it (exit 3). The model is src/capacity/ (pure); this file reads the
 * flags and the configuration, prints, and runs `--verify`: the same load, scaled
 * down, played by a real embedded node against the simulated model in child
 * processes, with the prediction set beside what was measured.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import {
  compareVerify,
  planCapacity,
  verifySetup,
  type CapacityPlan,
  type LimitKind,
  type LimitReport,
  type PlanInput,
  type VerifyComparison,
  type VerifyMeasurement,
  type VerifySetup,
} from "../../src/capacity";
import { baseChildEnv, loadConfig } from "../../src/config";
import { projectRoot } from "../../src/paths";
import { DrawSequence } from "../../src/sim/random";
import { UsageError, type ClientIo } from "./command";
import { fields, money, table } from "./format";
import { processIo } from "./index";

/** Exit codes of `clawfleet plan` (README, "Command line"). */
export const PLAN_EXIT = { fits: 0, failed: 1, usage: 2, cannotCarry: 3 } as const;

/**
 * Each role's CPU when no flag sets it, from BENCHMARKS.md ("Throughput", "Each role's CPU in the units of
 * `clawfleet plan`"): the most any run there measured, in three regimes, rounded up. The regimes: six processes
 * at saturation with the model answering at once (bench/throughput/run.ts), and one planner holding 400 tasks at
 * 2 s model latency (bench/concurrency.ts), under a generous rate limit and under one that binds. Every role,
 * Postgres, Redis, NATS and the simulated model shared the same two cores in those runs. A role spent the most
 * per operation where it had the fewest operations a second (the binding limit), so at the high rates that
 * decide how many processes a load needs, these figures err towards more of them.
 */
const BENCH_CPU_MS = { planner: 1.6, executor: 1.6, gateway: 5.7, checkpoint: 1.1 } as const;
/**
 * What a planner spends on the tasks it holds, steps apart, from BENCHMARKS.md ("Concurrency" and "Throughput"),
 * rounded up: CPU µs per task in flight per second (tasks waiting on a 30 s model call, nothing stepping), its
 * resident set before any task (MB) and what each task in flight adds to it (KB), the most of the runs there.
 * The planner's CPU per step was measured with tasks held at 2 s model latency, so it has their holding in it
 * already: charged again on top, it errs towards more planners, by about 3 % at 2 s.
 */
const BENCH_PLANNER_HOLD = { cpuUs: 40, baseMb: 160, perTaskKb: 50 } as const;
const BENCH_HOLD_SOURCE = "BENCHMARKS.md [2]";
const BENCH_HOLD_NOTE =
  "[2] A planner holding tasks as bench/concurrency.ts measured it: its CPU with 1,000 tasks waiting on a 30 s model call, its memory\n" +
  "    with 300 to 2,000 tasks in flight; the most of any run, rounded up (BENCHMARKS.md, Concurrency and Throughput).";
const BENCH_CPU_SOURCE = "BENCHMARKS.md [1]";
const BENCH_CPU_NOTE =
  "[1] Each role's CPU as bench/throughput/run.ts (six processes, saturated) and bench/concurrency.ts (400 tasks at 2 s model latency)\n" +
  "    measured it, the most of any run, rounded up (BENCHMARKS.md, Throughput). Each spent the most per operation at the lowest rates.";

const DEFAULTS = { inputTokens: 2000, outputTokens: 300, latency: "2s", toolLatency: "200ms", model: "claude-sonnet-5-5", target: 0.8, scale: 0.05, seconds: 60 };

const OPTIONS = {
  "tasks-per-hour": { type: "string", help: "tasks submitted per hour (required)" },
  "calls-per-task": { type: "string", help: "model calls per task (required)" },
  rpm: { type: "string", help: "the provider's requests-per-minute limit (unset: not checked)" },
  itpm: { type: "string", help: "input tokens per minute limit (unset: not checked)" },
  otpm: { type: "string", help: "output tokens per minute limit (unset: not checked)" },
  "input-tokens": { type: "string", help: `input tokens per model call (default ${DEFAULTS.inputTokens})` },
  "output-tokens": { type: "string", help: `output tokens per model call (default ${DEFAULTS.outputTokens})` },
  latency: { type: "string", help: `one model call: 2s, 400ms, 1.5s; a bare number is seconds (default ${DEFAULTS.latency})` },
  "tool-calls-per-task": { type: "string", help: "tool calls per task (default: calls-per-task − 1, a tool per turn but the last)" },
  "tool-latency": { type: "string", help: `one tool call (default ${DEFAULTS.toolLatency})` },
  model: { type: "string", help: `the model whose prices apply: src/llm/pricing.ts and CLAWFLEET_PRICES (default ${DEFAULTS.model})` },
  "planner-slots": { type: "string", help: "tasks one planner process runs at once (default: CLAWFLEET_PLANNER_SLOTS)" },
  "cpu-planner-ms": { type: "string", help: `CPU ms per step of a planner (default ${BENCH_CPU_MS.planner}, BENCHMARKS.md)` },
  "cpu-executor-ms": { type: "string", help: `CPU ms per tool call of an executor (default ${BENCH_CPU_MS.executor}, BENCHMARKS.md)` },
  "cpu-gateway-ms": { type: "string", help: `CPU ms per model call of a rate gateway (default ${BENCH_CPU_MS.gateway}, BENCHMARKS.md)` },
  "cpu-checkpoint-ms": { type: "string", help: `CPU ms per step of the checkpoint role (default ${BENCH_CPU_MS.checkpoint}, BENCHMARKS.md)` },
  "cpu-hold-us": { type: "string", help: `CPU µs a planner spends per task it holds, per second (default ${BENCH_PLANNER_HOLD.cpuUs}, BENCHMARKS.md)` },
  "planner-base-rss-mb": { type: "string", help: `a planner's resident set before any task, MB (default ${BENCH_PLANNER_HOLD.baseMb}, BENCHMARKS.md)` },
  "rss-per-task-kb": { type: "string", help: `what each task a planner holds adds to its resident set, KB (default ${BENCH_PLANNER_HOLD.perTaskKb}, BENCHMARKS.md)` },
  "target-utilisation": { type: "string", help: `the utilisation limits and processes are sized for, in (0, 1] (default ${DEFAULTS.target})` },
  verify: { type: "boolean", help: "replay the load, scaled down, on an embedded node against the simulated model" },
  scale: { type: "string", help: `--verify: the fraction of the rate and limits played, in (0, 1] (default ${DEFAULTS.scale})` },
  seconds: { type: "string", help: `--verify: how long tasks are submitted for (default ${DEFAULTS.seconds})` },
  json: { type: "boolean", help: "print the plan as JSON (schema clawfleet.plan/1)" },
  help: { type: "boolean", short: "h", help: "this help" },
} as const satisfies Record<string, { type: "string" | "boolean"; short?: string; help: string }>;

type Flag = keyof typeof OPTIONS;

const USAGE_LINE = "usage: clawfleet plan --tasks-per-hour N --calls-per-task N [--rpm N] [--itpm N] [--otpm N] [options]";

export function planHelp(): string {
  const rows = Object.entries(OPTIONS).map(([name, o]) => [`${"short" in o ? `-${o.short}, ` : ""}--${name}`, o.help] as const);
  const width = Math.max(...rows.map(([f]) => f.length));
  return [
    USAGE_LINE,
    "",
    "Plans the capacity a load needs: each limit's headroom, the planners, executors, gateways and checkpoint writers, the",
    "queueing delay (M/D/1 at the binding limit, M/M/c for planner slots) and the cost per day.",
    "Exit codes: 0 the load fits, 3 a limit cannot carry it (demand at or above the limit), 2 a bad flag,",
    "1 --verify could not run (with --verify: 0 whenever it ran, whatever it found).",
    "",
    "options:",
    ...rows.map(([f, h]) => `  ${f.padEnd(width)}  ${h}`),
  ].join("\n");
}

interface Assumption {
  name: string;
  value: string;
  source: string;
}

export interface PlanArgs {
  input: PlanInput;
  model: string;
  assumptions: Assumption[];
  json: boolean;
  verify?: { scale: number; seconds: number };
}

function numberFlag(flag: Flag, raw: string | undefined, range: { min: number; max?: number; integer?: boolean; exclusiveMin?: boolean }): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  const { min, max = Infinity, integer = false, exclusiveMin = false } = range;
  const low = exclusiveMin ? n <= min : n < min;
  if (raw.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || low || n > max) {
    const kind = integer ? "an integer" : "a number";
    const bounds = max === Infinity ? `${exclusiveMin ? ">" : "≥"} ${min}` : `in ${exclusiveMin ? "(" : "["}${min}, ${max}]`;
    throw new UsageError(`--${flag} must be ${kind} ${bounds}, got "${raw}"`);
  }
  return n;
}

/** Seconds of a duration flag: `2s`, `400ms`, `1.5s`, `1m`; a bare number is seconds. */
function durationFlag(flag: Flag, raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(raw);
  if (!m) throw new UsageError(`--${flag} must be a duration such as 2s, 400ms or 1.5s, got "${raw}"`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n / 1000 : m[2] === "m" ? n * 60 : n;
}

/** The plan's inputs from the command line, with the configuration's planner slots and prices; a UsageError naming the flag. */
export function parsePlanArgs(argv: readonly string[], env?: NodeJS.ProcessEnv): PlanArgs | "help" {
  let values: Partial<Record<Flag, string | boolean>>;
  try {
    const options = Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, "short" in o ? { type: o.type, short: o.short } : { type: o.type }]));
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }) as { values: Partial<Record<Flag, string | boolean>> });
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0] ?? "bad arguments");
  }
  if (values.help === true) return "help";
  const str = (f: Flag): string | undefined => (typeof values[f] === "string" ? values[f] : undefined);
  const int = (f: Flag, min: number) => numberFlag(f, str(f), { min, integer: true });
  const ms = (f: Flag) => numberFlag(f, str(f), { min: 0 });
  const config = loadConfig(env);
  const assumptions: Assumption[] = [];
  const given = (f: Flag) => str(f) !== undefined;
  const note = (name: string, value: string, f: Flag, otherwise: string) => assumptions.push({ name, value, source: given(f) ? `--${f}` : otherwise });

  const tasksPerHour = numberFlag("tasks-per-hour", str("tasks-per-hour"), { min: 0, exclusiveMin: true });
  if (tasksPerHour === undefined) throw new UsageError("--tasks-per-hour is required");
  const callsPerTask = int("calls-per-task", 1);
  if (callsPerTask === undefined) throw new UsageError("--calls-per-task is required");
  const inputTokens = int("input-tokens", 1) ?? DEFAULTS.inputTokens;
  const outputTokens = int("output-tokens", 1) ?? DEFAULTS.outputTokens;
  const latency = durationFlag("latency", str("latency") ?? DEFAULTS.latency);
  const toolCalls = int("tool-calls-per-task", 0) ?? callsPerTask - 1;
  const toolLatency = durationFlag("tool-latency", str("tool-latency") ?? DEFAULTS.toolLatency);
  const model = str("model") ?? DEFAULTS.model;
  const price = config.prices[model];
  if (!price) throw new UsageError(`--model "${model}" has no price (known: ${Object.keys(config.prices).join(", ")}; CLAWFLEET_PRICES adds more)`);
  const slots = int("planner-slots", 1) ?? config.planner.slots;
  const cpu = {
    planner: ms("cpu-planner-ms") ?? BENCH_CPU_MS.planner,
    executor: ms("cpu-executor-ms") ?? BENCH_CPU_MS.executor,
    gateway: ms("cpu-gateway-ms") ?? BENCH_CPU_MS.gateway,
    checkpoint: ms("cpu-checkpoint-ms") ?? BENCH_CPU_MS.checkpoint,
  };
  const hold = {
    cpuUs: numberFlag("cpu-hold-us", str("cpu-hold-us"), { min: 0 }) ?? BENCH_PLANNER_HOLD.cpuUs,
    baseMb: numberFlag("planner-base-rss-mb", str("planner-base-rss-mb"), { min: 0 }) ?? BENCH_PLANNER_HOLD.baseMb,
    perTaskKb: numberFlag("rss-per-task-kb", str("rss-per-task-kb"), { min: 0, exclusiveMin: true }) ?? BENCH_PLANNER_HOLD.perTaskKb,
  };
  const maxRssMb = config.planner.maxRssBytes / 1_048_576;
  if (maxRssMb > 0 && maxRssMb - hold.baseMb < hold.perTaskKb / 1024)
    throw new UsageError(
      `CLAWFLEET_PLANNER_MAX_RSS_MB (${maxRssMb}) leaves a planner no room for a task beyond its own ${hold.baseMb} MB (--planner-base-rss-mb): it would take none`,
    );
  const target = numberFlag("target-utilisation", str("target-utilisation"), { min: 0, max: 1, exclusiveMin: true }) ?? DEFAULTS.target;
  const limits: Partial<Record<LimitKind, number>> = {};
  for (const k of ["rpm", "itpm", "otpm"] as const) {
    const v = int(k, 1);
    if (v !== undefined) limits[k] = v;
  }

  note("input tokens per call", String(inputTokens), "input-tokens", "default");
  note("output tokens per call", String(outputTokens), "output-tokens", "default");
  note("model call latency", `${latency}s`, "latency", "default");
  note("tool calls per task", String(toolCalls), "tool-calls-per-task", "default: calls − 1");
  note("tool call latency", `${toolLatency}s`, "tool-latency", "default");
  note("model", `${model} ($${price.input} in / $${price.output} out per M tokens)`, "model", "default; prices: src/llm/pricing.ts, CLAWFLEET_PRICES");
  note("planner slots per process", String(slots), "planner-slots", "CLAWFLEET_PLANNER_SLOTS (configuration)");
  note("CPU ms per planner step", String(cpu.planner), "cpu-planner-ms", BENCH_CPU_SOURCE);
  note("CPU ms per executor tool call", String(cpu.executor), "cpu-executor-ms", BENCH_CPU_SOURCE);
  note("CPU ms per gateway model call", String(cpu.gateway), "cpu-gateway-ms", BENCH_CPU_SOURCE);
  note("CPU ms per checkpoint step", String(cpu.checkpoint), "cpu-checkpoint-ms", BENCH_CPU_SOURCE);
  note("planner CPU µs per task held per second", String(hold.cpuUs), "cpu-hold-us", BENCH_HOLD_SOURCE);
  note("planner RSS before any task, MB", String(hold.baseMb), "planner-base-rss-mb", BENCH_HOLD_SOURCE);
  note("planner RSS per task held, KB", String(hold.perTaskKb), "rss-per-task-kb", BENCH_HOLD_SOURCE);
  assumptions.push({ name: "planner memory cap, MB", value: maxRssMb > 0 ? String(maxRssMb) : "none", source: "CLAWFLEET_PLANNER_MAX_RSS_MB (configuration)" });
  note("target utilisation", String(target), "target-utilisation", "default");

  const input: PlanInput = {
    tasksPerHour,
    callsPerTask,
    toolCallsPerTask: toolCalls,
    inputTokensPerCall: inputTokens,
    outputTokensPerCall: outputTokens,
    latencySeconds: latency,
    toolLatencySeconds: toolLatency,
    limits,
    plannerSlots: slots,
    cpuMs: cpu,
    plannerHoldUs: hold.cpuUs,
    plannerMemory: { baseMb: hold.baseMb, perTaskKb: hold.perTaskKb, maxRssMb },
    targetUtilisation: target,
    price: { input: price.input, output: price.output },
  };
  const args: PlanArgs = { input, model, assumptions, json: values.json === true };
  if (values.verify !== true) {
    for (const f of ["scale", "seconds"] as const) if (given(f)) throw new UsageError(`--${f} is only for --verify`);
    return args;
  }
  if (toolCalls !== callsPerTask - 1)
    throw new UsageError(`--tool-calls-per-task must be calls-per-task − 1 (${callsPerTask - 1}) with --verify: the simulated model asks for one tool a turn, then answers`);
  const scale = numberFlag("scale", str("scale"), { min: 0, max: 1, exclusiveMin: true }) ?? DEFAULTS.scale;
  const seconds = numberFlag("seconds", str("seconds"), { min: 5, max: 3600 }) ?? DEFAULTS.seconds;
  return { ...args, verify: { scale, seconds } };
}

// ---- output ----------------------------------------------------------------------------------------

const num = (n: number, digits = 0): string => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const pct = (f: number): string => `${Number((f * 100).toFixed(1))}%`;
const secs = (s: number | null): string => (s === null ? "unbounded" : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`);
const LABEL: Record<LimitKind, string> = { rpm: "RPM", itpm: "ITPM", otpm: "OTPM" };
const VERDICT = { fits: "fits", "above-target": "above target", "cannot-carry": "CANNOT CARRY" } as const;

/** The plain sentences: what cannot carry the load, and what limit or rate would. */
export function advice(plan: CapacityPlan, input: PlanInput): string[] {
  const target = pct(input.targetUtilisation);
  return plan.limits.flatMap((l: LimitReport) => {
    const name = LABEL[l.limit];
    const fix = `A limit of ${num(l.limitNeeded)} ${name} would carry it at ${target} utilisation, or at most ${num(l.maxTasksPerHour)} tasks/h at ${num(l.perMinute)} ${name}.`;
    if (l.verdict === "cannot-carry") {
      const gap = l.headroom === 0 ? "zero headroom" : `${num(-l.headroom)} ${l.unit}/min over`;
      return [
        `${name} CANNOT carry this load: it needs ${num(l.demandPerMinute)} ${l.unit}/min against a limit of ${num(l.perMinute)} (${gap}). ` +
          `Any burst is refused, and the backlog grows without end. ${fix}`,
      ];
    }
    if (l.verdict === "above-target")
      return [`${name} carries this load at ${pct(l.utilisation)} utilisation, above the ${target} target: bursts queue, and calls wait ${secs(plan.queueing.rateLimitWaitPerCall)} on average. ${fix}`];
    return [];
  });
}

/** The planner's memory, where its cap holds it to fewer tasks than its slots. */
function memoryBound(plan: CapacityPlan, input: PlanInput): string {
  const byMemory = plan.fleet.plannerTasksByMemory;
  return byMemory < input.plannerSlots ? `, memory for ${num(byMemory)} under its ${num(input.plannerMemory.maxRssMb)} MB cap` : "";
}

export function renderPlan(plan: CapacityPlan, args: PlanArgs): string {
  const { input } = args;
  const q = plan.queueing;
  const f = plan.fleet;
  const limitRows = plan.limits.map((l) => [
    LABEL[l.limit],
    num(l.perMinute),
    num(l.demandPerMinute),
    pct(l.utilisation),
    `${num(l.headroom)} (${pct(1 - l.utilisation)})`,
    VERDICT[l.verdict],
  ]);
  const lines = [
    `Load: ${num(input.tasksPerHour)} tasks/h (${num(plan.load.tasksPerSecond, 2)}/s) × ${input.callsPerTask} model calls = ${num(plan.load.callsPerMinute)} calls/min; ` +
      `${input.toolCallsPerTask} tool calls per task`,
    "",
    plan.limits.length > 0
      ? table(["limit", "per min", "needed/min", "utilisation", "headroom", "verdict"], limitRows)
      : "No provider limit given (--rpm, --itpm, --otpm): none checked.",
    "",
    ...advice(plan, input),
    ...(plan.fits ? [`The load fits${plan.binding ? `; the binding limit is ${LABEL[plan.binding]}` : ""}.`] : []),
    "",
    `Fleet, sized for ${pct(input.targetUtilisation)} utilisation:`,
    fields([
      [
        "  planners",
        `${f.planners} (${input.plannerSlots} slots each${memoryBound(plan, input)}; ${num(f.concurrentTasks, 1)} tasks at once need ${f.plannerSlotsNeeded} slots; ` +
          `${num(f.cpuCores.planner, 2)} cores, ${num(f.plannerHoldingCores, 2)} of them holding tasks; ~${num(f.plannerRssMb)} MB each)`,
      ],
      ["  executors", `${f.executors} (${num(plan.load.toolCallsPerSecond, 1)} tool calls/s; ${num(f.cpuCores.executor, 2)} cores)`],
      ["  gateways", `${f.gateways} (${num(plan.load.callsPerMinute / 60, 1)} model calls/s; ${num(f.cpuCores.gateway, 2)} cores)`],
      ["  checkpoint writers", `${f.checkpoints} (${num(plan.load.tasksPerSecond * (input.callsPerTask + input.toolCallsPerTask), 1)} steps/s; ${num(f.cpuCores.checkpoint, 2)} cores)`],
    ]),
    "",
    "Queueing:",
    fields([
      ["  rate-limit wait per call (M/D/1)", secs(q.rateLimitWaitPerCall)],
      ["  submit → started (M/M/c, planner slots)", secs(q.plannerWait)],
      ["  task run", secs(q.taskRunSeconds)],
      ["  submit → end", secs(q.taskLatencySeconds)],
    ]),
    "",
    `Cost: ${money(plan.cost.perTask)} per task, $${num(plan.cost.perDay, 2)} per day (${num(plan.cost.tasksPerDay)} tasks/day, ${args.model}).`,
    "",
    "Assumptions:",
    table(
      ["  what", "value", "source"],
      args.assumptions.map((a) => [`  ${a.name}`, a.value, a.source]),
    ),
    ...(args.assumptions.some((a) => a.source === BENCH_CPU_SOURCE) ? [BENCH_CPU_NOTE] : []),
    ...(args.assumptions.some((a) => a.source === BENCH_HOLD_SOURCE) ? [BENCH_HOLD_NOTE] : []),
  ];
  return lines.join("\n");
}

/** `--json`: schema `clawfleet.plan/1`; an unbounded time is null. */
export function planJson(plan: CapacityPlan, args: PlanArgs): Record<string, unknown> {
  const { input } = args;
  return {
    schema: "clawfleet.plan/1",
    fits: plan.fits,
    exit_code: plan.fits ? PLAN_EXIT.fits : PLAN_EXIT.cannotCarry,
    model: args.model,
    load: {
      tasks_per_hour: input.tasksPerHour,
      tasks_per_second: plan.load.tasksPerSecond,
      calls_per_task: input.callsPerTask,
      tool_calls_per_task: input.toolCallsPerTask,
      calls_per_minute: plan.load.callsPerMinute,
      input_tokens_per_minute: plan.load.inputTokensPerMinute,
      output_tokens_per_minute: plan.load.outputTokensPerMinute,
    },
    limits: plan.limits.map((l) => ({
      limit: l.limit,
      unit: l.unit,
      per_minute: l.perMinute,
      demand_per_minute: l.demandPerMinute,
      utilisation: l.utilisation,
      headroom: l.headroom,
      verdict: l.verdict,
      limit_needed: l.limitNeeded,
      max_tasks_per_hour: l.maxTasksPerHour,
    })),
    binding: plan.binding,
    advice: advice(plan, input),
    fleet: {
      planners: plan.fleet.planners,
      planner_slots: input.plannerSlots,
      planner_slots_needed: plan.fleet.plannerSlotsNeeded,
      planner_tasks_by_memory: Number.isFinite(plan.fleet.plannerTasksByMemory) ? plan.fleet.plannerTasksByMemory : null,
      tasks_per_planner: plan.fleet.tasksPerPlanner,
      planner_rss_mb: plan.fleet.plannerRssMb,
      planner_holding_cores: plan.fleet.plannerHoldingCores,
      concurrent_tasks: plan.fleet.concurrentTasks,
      executors: plan.fleet.executors,
      gateways: plan.fleet.gateways,
      checkpoints: plan.fleet.checkpoints,
      cpu_cores: plan.fleet.cpuCores,
      target_utilisation: input.targetUtilisation,
    },
    queueing: {
      rate_limit_wait_per_call_s: plan.queueing.rateLimitWaitPerCall,
      submit_to_started_s: plan.queueing.plannerWait,
      task_run_s: plan.queueing.taskRunSeconds,
      submit_to_end_s: plan.queueing.taskLatencySeconds,
    },
    cost: { per_task_usd: plan.cost.perTask, per_day_usd: plan.cost.perDay, tasks_per_day: plan.cost.tasksPerDay },
    assumptions: args.assumptions,
  };
}

function renderVerify(setup: VerifySetup, m: VerifyMeasurement, c: VerifyComparison, scale: number): string {
  const fmt = (v: number | null) => (v === null ? "unbounded" : num(v, Number.isInteger(v) ? 0 : 2));
  const limits = Object.entries(setup.perWindow).map(([k, n]) => `${LABEL[k as LimitKind]} ${n} per ${setup.windowMs} ms`).join(", ");
  const agree = c.predictedSaturated === c.measuredSaturated ? "agree" : "DISAGREE";
  return [
    "",
    `Verification: ${num(setup.input.tasksPerHour, Number.isInteger(setup.input.tasksPerHour) ? 0 : 1)} tasks/h (× ${scale}) for ${m.seconds} s on an embedded node; simulated model ` +
      `${setup.input.latencySeconds}s a call${limits ? `, ${limits}` : ", no limits"}.`,
    `${m.submitted} tasks submitted, ${m.succeeded} succeeded, ${m.failed} failed${m.failed > 0 ? ` (${Object.entries(m.failures).map(([k, n]) => `${k} ${n}`).join(", ")})` : ""}, ` +
      `${m.notStarted} never started; ${num(m.elapsedSeconds, 1)} s in all.`,
    "",
    table(
      ["figure", "predicted", "measured", "difference", "error"],
      c.rows.map((r) => [
        r.figure,
        fmt(r.predicted),
        fmt(r.measured),
        r.predicted === null ? "-" : `${r.measured >= r.predicted ? "+" : ""}${fmt(r.measured - r.predicted)}`,
        r.relativeError === null ? "-" : `${r.relativeError >= 0 ? "+" : ""}${pct(r.relativeError)}`,
      ]),
    ),
    "",
    `Saturated: predicted ${c.predictedSaturated ? "yes" : "no"}, measured ${c.measuredSaturated ? "yes" : "no"} (${agree}).`,
  ].join("\n");
}

function verifyJson(setup: VerifySetup, m: VerifyMeasurement, c: VerifyComparison, scale: number): Record<string, unknown> {
  return {
    scale,
    window_ms: setup.windowMs,
    limits_per_window: setup.perWindow,
    measured: m,
    rows: c.rows.map((r) => ({ figure: r.figure, predicted: r.predicted, measured: r.measured, relative_error: r.relativeError })),
    predicted_saturated: c.predictedSaturated,
    measured_saturated: c.measuredSaturated,
  };
}

// ---- --verify: the run -----------------------------------------------------------------------------

const AGENT = "plan-verify";
interface Child {
  proc: ChildProcess;
  output(): string;
  exited: Promise<void>;
}

function spawnClawfleet(args: string[], env: Record<string, string>, parent: NodeJS.ProcessEnv | undefined): Child {
  const proc = spawn(process.execPath, [path.join(projectRoot(), "bin", "clawfleet.js"), ...args], {
    env: { ...baseChildEnv(parent), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const keep = (b: Buffer) => (out = (out + b.toString()).slice(-20_000));
  proc.stdout.on("data", keep);
  proc.stderr.on("data", keep);
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  return { proc, output: () => out, exited };
}

async function stopChild(c: Child): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  c.proc.kill("SIGTERM");
  const t = setTimeout(() => c.proc.kill("SIGKILL"), 15_000);
  await c.exited;
  clearTimeout(t);
}

async function waitUntil<T>(what: string, child: Child, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.proc.exitCode !== null) throw new Error(`${what} exited:\n${child.output().slice(-3000)}`);
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms:\n${child.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The agent the run plays: `tools` tools that each sleep the tool latency (a service of the node's `tools`
 * role), and a system prompt padded to about the planned input tokens (the simulated model counts 4 characters
 * a token). The generic policy calls each tool once, one a turn, then answers: tools + 1 model calls.
 */
function writeAgent(dir: string, input: PlanInput, model: string): { prompts: string; service: string } {
  const tools = Array.from({ length: input.toolCallsPerTask }, (_, i) => `step_${i + 1}`);
  const prompts = path.join(dir, "prompts");
  fs.mkdirSync(prompts);
  const pad = "Plan verification load. ".repeat(Math.max(1, Math.floor((input.inputTokensPerCall * 4 - 400 - tools.length * 120) / 24)));
  const front = [
    "---",
    `name: ${AGENT}`,
    `tools: [${tools.join(", ")}]`,
    "tiers:",
    "  default:",
    `    model: ${model}`,
    `    max_tokens: ${Math.min(64_000, input.outputTokensPerCall)}`,
    "default_tier: default",
    "budgets:",
    `  max_steps: ${input.callsPerTask + input.toolCallsPerTask + 5}`,
    "---",
  ];
  fs.writeFileSync(path.join(prompts, `${AGENT}.md`), `${front.join("\n")}\n${pad}\n`);
  const toolMs = Math.round(input.toolLatencySeconds * 1000);
  const service = path.join(dir, "plan-verify.service.cjs");
  const root = JSON.stringify(projectRoot());
  const actions = tools
    .map((t) => `    ${t}: { tool: { description: "A step of the load.", input: { type: "object", properties: {} }, timeoutMs: ${Math.min(110_000, toolMs * 2 + 5000)} }, handler: () => sleep(${toolMs}).then(() => ({ ok: true })) },`)
    .join("\n");
  fs.writeFileSync(
    service,
    [
      `const path = require("node:path");`,
      `const root = ${root};`,
      `const compiled = require(path.join(root, "bin", "entry.js")).useCompiled();`,
      `const { ClawfleetTools } = require(path.join(root, compiled ? "dist/mixins" : "mixins"));`,
      `const sleep = (ms) => new Promise((r) => setTimeout(r, ms));`,
      `module.exports = { name: "plan-verify-tools", mixins: [ClawfleetTools], actions: {`,
      actions,
      `} };`,
      "",
    ].join("\n"),
  );
  return { prompts, service };
}

interface TaskView {
  status: string;
  error: { type?: string; message?: string } | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const r = await fetch(url, init);
  if (!r.ok) throw new Error(`${init?.method ?? "GET"} ${url}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

interface SimStats {
  responses_by_status: Record<string, number>;
  input_tokens: number;
  output_tokens: number;
}

/** Submits the scaled load for `seconds` (Poisson arrivals, seeded), waits for it to end, and measures. */
async function playLoad(base: string, simUrl: string, setup: VerifySetup, seconds: number, io: ClientIo): Promise<VerifyMeasurement> {
  const perSecond = setup.input.tasksPerHour / 3600;
  const draws = new DrawSequence(1, 7);
  const ids: string[] = [];
  const submits: Promise<void>[] = [];
  const start = io.now();
  for (let at = -Math.log(1 - draws.next()) / perSecond; at < seconds; at += -Math.log(1 - draws.next()) / perSecond) {
    const wait = start + at * 1000 - io.now();
    if (wait > 0) await io.sleep(wait);
    submits.push(
      json<{ id: string }>(`${base}/v1/tasks`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ agent: AGENT, input: "Run the steps." }),
      }).then((t) => void ids.push(t.id)),
    );
  }
  await Promise.all(submits);
  const rest = start + seconds * 1000 - io.now();
  if (rest > 0) await io.sleep(rest);
  const atEnd = await json<SimStats>(`${simUrl}/_sim/stats`);
  const run = setup.plan.fleet.concurrentTasks / perSecond;
  // Time for what is in flight to end: three runs, and as long as the submitting when the load backs up.
  const deadline = io.now() + Math.min(120_000, Math.max(15_000, run * 3000, setup.plan.fits ? 0 : seconds * 1000));
  const views = new Map<string, TaskView>();
  while (io.now() < deadline) {
    for (const id of ids) if (!TERMINAL.has(views.get(id)?.status ?? "")) views.set(id, await json<TaskView>(`${base}/v1/tasks/${id}`));
    if ([...views.values()].every((v) => TERMINAL.has(v.status))) break;
    await io.sleep(500);
  }
  const elapsedSeconds = (io.now() - start) / 1000;
  const final = await json<SimStats>(`${simUrl}/_sim/stats`);
  const all = [...views.values()];
  const delays = all.flatMap((v) => (v.started_at ? [(Date.parse(v.started_at) - Date.parse(v.created_at)) / 1000] : [])).sort((a, b) => a - b);
  const runs = all.flatMap((v) => (v.status === "succeeded" && v.started_at && v.finished_at ? [(Date.parse(v.finished_at) - Date.parse(v.started_at)) / 1000] : []));
  const mean = (xs: number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
  const answered = final.responses_by_status["200"] ?? 0;
  return {
    seconds,
    elapsedSeconds,
    submitted: ids.length,
    succeeded: all.filter((v) => v.status === "succeeded").length,
    failed: all.filter((v) => v.status === "failed" || v.status === "cancelled").length,
    notStarted: all.filter((v) => v.started_at === null).length,
    callsWhileSubmitting: atEnd.responses_by_status["200"] ?? 0,
    rateLimited: final.responses_by_status["429"] ?? 0,
    queueDelayMean: mean(delays),
    queueDelayP95: delays[Math.min(delays.length - 1, Math.floor(delays.length * 0.95))] ?? 0,
    taskRunMean: mean(runs),
    failures: all.reduce<Record<string, number>>((acc, v) => {
      if (v.status !== "failed" && v.status !== "cancelled") return acc;
      const why = v.error?.type ?? v.status;
      acc[why] = (acc[why] ?? 0) + 1;
      return acc;
    }, {}),
    inputTokensPerCall: answered === 0 ? 0 : final.input_tokens / answered,
    outputTokensPerCall: answered === 0 ? 0 : final.output_tokens / answered,
  };
}

/** Starts the simulated model and an embedded node (child processes), plays the load, and stops both. */
async function runVerify(args: PlanArgs, setup: VerifySetup, seconds: number, io: ClientIo, env: NodeJS.ProcessEnv | undefined): Promise<VerifyMeasurement> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-plan-"));
  const children: Child[] = [];
  try {
    const { prompts, service } = writeAgent(dir, setup.input, args.model);
    const limitFlags = Object.entries(setup.perWindow).flatMap(([k, n]) => [`--${k}`, String(n)]);
    const sim = spawnClawfleet(
      ["sim", "--port", "0", "--latency-ms", String(Math.round(setup.input.latencySeconds * 1000)), "--limit-window-ms", String(setup.windowMs), ...limitFlags],
      {},
      env,
    );
    children.push(sim);
    const simUrl = await waitUntil("the simulated model", sim, 60_000, () => Promise.resolve(/listening on (http:\/\/\S+)/.exec(sim.output())?.[1]));
    const node = spawnClawfleet(
      ["start"],
      {
        PORT: "0",
        CLAWFLEET_DATA_DIR: "memory://",
        CLAWFLEET_AUTH: "off",
        LOG_LEVEL: "warn",
        ANTHROPIC_API_KEY: "sk-plan-verify",
        ANTHROPIC_BASE_URL: simUrl,
        CLAWFLEET_PROMPTS_DIR: prompts,
        CLAWFLEET_USER_SERVICES: service,
        CLAWFLEET_PLANNER_SLOTS: String(setup.input.plannerSlots),
        CLAWFLEET_RATE_LIMITS: JSON.stringify({ [args.model]: setup.perWindow }),
        CLAWFLEET_RATE_LIMIT_WINDOW_MS: String(setup.windowMs),
      },
      env,
    );
    children.push(node);
    // The embedded node's banner names the port it took.
    const base = await waitUntil("the embedded node", node, 120_000, () => Promise.resolve(/-X POST (http:\/\/\S+)\/v1\/tasks/.exec(node.output())?.[1]));
    await waitUntil("the embedded node", node, 120_000, async () => ((await fetch(`${base}/health/ready`)).status === 200 ? true : undefined));
    io.err(`clawfleet plan: verifying for ${seconds} s against ${base} (simulated model ${simUrl})\n`);
    return await playLoad(base, simUrl, setup, seconds, io);
  } finally {
    await Promise.all(children.map(stopChild));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---- the command -----------------------------------------------------------------------------------

/** `clawfleet plan …`: answers the exit code (PLAN_EXIT). `env`: where the configuration is read from. @default process.env */
export async function runPlan(argv: readonly string[], io: ClientIo, env?: NodeJS.ProcessEnv): Promise<number> {
  let args: PlanArgs | "help";
  try {
    args = parsePlanArgs(argv, env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`clawfleet plan: ${err.message}\n${USAGE_LINE} (--help for more)\n`);
    return PLAN_EXIT.usage;
  }
  if (args === "help") {
    io.out(`${planHelp()}\n`);
    return PLAN_EXIT.fits;
  }
  const plan = planCapacity(args.input);
  const code = plan.fits ? PLAN_EXIT.fits : PLAN_EXIT.cannotCarry;
  if (!args.verify) {
    io.out(`${args.json ? JSON.stringify(planJson(plan, args), null, 2) : renderPlan(plan, args)}\n`);
    return code;
  }
  const { scale, seconds } = args.verify;
  const setup = verifySetup(args.input, scale, seconds);
  let measured: VerifyMeasurement;
  try {
    measured = await runVerify(args, setup, seconds, io, env);
  } catch (err) {
    io.err(`clawfleet plan --verify: the run failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return PLAN_EXIT.failed;
  }
  const comparison = compareVerify(setup, measured);
  io.out(
    args.json
      ? `${JSON.stringify({ ...planJson(plan, args), verify: verifyJson(setup, measured, comparison, scale) }, null, 2)}\n`
      : `${renderPlan(plan, args)}\n${renderVerify(setup, measured, comparison, scale)}\n`,
  );
  return PLAN_EXIT.fits;
}

/** `clawfleet plan` in this process. */
export const runPlanCommand = (argv: readonly string[]): Promise<number> => runPlan(argv, processIo());
