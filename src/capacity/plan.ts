/**
 * The capacity model behind `clawfleet plan`: from a load (tasks per hour,
 * model calls and tool calls per task, tokens per call, latencies) and the
 * provider's limits, how close each limit is to its end, how many planners,
 * executors, gateways and checkpoint writers carry the load, how long tasks queue, and what a day
 * of it costs. Pure arithmetic: no I/O, no clock (queueing.ts has the formulas).
 *
 * The model. λ tasks per second each make `calls` model calls and `toolCalls`
 * tool calls, one after another.
 * - Each limit (RPM, ITPM, OTPM) is a server whose utilisation is demand / limit.
 *   At 1 or above it cannot carry the load: the backlog grows without end, and
 *   any burst is refused. The busiest limit is the binding one; a model call
 *   waits behind it as in an M/D/1 queue (queueing.ts).
 * - A task holds one planner slot for its whole run:
 *   S = calls × (latency + rate-limit wait) + toolCalls × tool latency + steps × planner CPU.
 *   Slots are c servers of an M/M/c queue; the wait in that queue is the delay
 *   from submission to start.
 * - Each process is one Node event loop, one core: a role's processes are its CPU
 *   (steps per second × CPU per step) over the target utilisation, and planners
 *   also need the slots for their concurrency (λ·S, Little's law) at that target.
 *   A planner also spends CPU on each task it holds, stepping or not (its lease's
 *   heartbeat, its timers), and memory: a planner holds no more tasks than its
 *   memory cap leaves room for, beyond what the process takes before any task.
 */
import { md1Wait, mmcWait } from "./queueing";

export const LIMIT_KINDS = ["rpm", "itpm", "otpm"] as const;
export type LimitKind = (typeof LIMIT_KINDS)[number];

/** USD per million tokens (src/llm/pricing.ts). */
export interface TokenPrice {
  input: number;
  output: number;
}

export interface PlanInput {
  tasksPerHour: number;
  /** Model calls per task. */
  callsPerTask: number;
  toolCallsPerTask: number;
  inputTokensPerCall: number;
  outputTokensPerCall: number;
  /** One model call, seconds. */
  latencySeconds: number;
  /** One tool call, seconds. */
  toolLatencySeconds: number;
  /** Per minute; an absent limit is not checked. */
  limits: Partial<Record<LimitKind, number>>;
  /** Tasks one planner process runs at once (CLAWFLEET_PLANNER_SLOTS). */
  plannerSlots: number;
  /**
   * CPU milliseconds: a planner per model or tool step, an executor per tool call, a gateway per model call, the
   * checkpoint role per step it stores.
   */
  cpuMs: { planner: number; executor: number; gateway: number; checkpoint: number };
  /** CPU microseconds a planner spends per task it holds, per second, whether the task steps or waits. */
  plannerHoldUs: number;
  /**
   * A planner's memory: its resident set before any task (MB), what each task in flight adds (KB), and the cap
   * above which it takes no new task (MB, CLAWFLEET_PLANNER_MAX_RSS_MB; 0 is no cap).
   */
  plannerMemory: { baseMb: number; perTaskKb: number; maxRssMb: number };
  /** The utilisation each resource is sized for, in (0, 1]. */
  targetUtilisation: number;
  price: TokenPrice;
}

export type LimitVerdict = "fits" | "above-target" | "cannot-carry";

export interface LimitReport {
  limit: LimitKind;
  /** What the limit counts: requests, input tokens, output tokens. */
  unit: string;
  perMinute: number;
  demandPerMinute: number;
  utilisation: number;
  /** perMinute − demandPerMinute: negative when over. */
  headroom: number;
  verdict: LimitVerdict;
  /** The limit that carries the load at the target utilisation (rounded up). */
  limitNeeded: number;
  /** The most tasks per hour this limit carries at the target utilisation. */
  maxTasksPerHour: number;
}

export interface CapacityPlan {
  load: {
    tasksPerSecond: number;
    callsPerMinute: number;
    toolCallsPerSecond: number;
    inputTokensPerMinute: number;
    outputTokensPerMinute: number;
  };
  limits: LimitReport[];
  /** False when some limit cannot carry the load. */
  fits: boolean;
  /** The busiest limit, when any is given. */
  binding: LimitKind | null;
  queueing: {
    /** Seconds a model call waits for the binding limit (M/D/1); null: unbounded. */
    rateLimitWaitPerCall: number | null;
    /** Seconds from submission to start, waiting for a planner slot (M/M/c); null: unbounded. */
    plannerWait: number | null;
    /** Seconds a task holds its slot: calls, rate-limit waits, tools and planner CPU; null: unbounded. */
    taskRunSeconds: number | null;
    /** Submission to end, seconds; null: unbounded. */
    taskLatencySeconds: number | null;
  };
  fleet: {
    /** Tasks running at once (λ·S, without rate-limit waits when the limit cannot carry the load). */
    concurrentTasks: number;
    plannerSlotsNeeded: number;
    planners: number;
    /** Tasks a planner can hold within its memory cap (Infinity without a cap). */
    plannerTasksByMemory: number;
    /** Tasks each planner holds at this load, and its resident set then (MB). */
    tasksPerPlanner: number;
    plannerRssMb: number;
    executors: number;
    gateways: number;
    /** Processes of the checkpoint role (every step's checkpoint is written through one). */
    checkpoints: number;
    /** Cores of CPU each role spends at this load; the planners' includes `plannerHoldingCores`. */
    cpuCores: { planner: number; executor: number; gateway: number; checkpoint: number };
    /** What the planners spend on holding their tasks, steps apart. */
    plannerHoldingCores: number;
  };
  cost: { perTask: number; perDay: number; tasksPerDay: number };
}

const UNITS: Record<LimitKind, string> = { rpm: "requests", itpm: "input tokens", otpm: "output tokens" };

/** What one task takes of a limit: requests or tokens. */
export function unitsPerTask(input: PlanInput, limit: LimitKind): number {
  const perCall = limit === "rpm" ? 1 : limit === "itpm" ? input.inputTokensPerCall : input.outputTokensPerCall;
  return input.callsPerTask * perCall;
}

function limitReport(input: PlanInput, limit: LimitKind, perMinute: number): LimitReport {
  const perTask = unitsPerTask(input, limit);
  const demandPerMinute = (input.tasksPerHour / 60) * perTask;
  const utilisation = demandPerMinute / perMinute;
  const target = input.targetUtilisation;
  return {
    limit,
    unit: UNITS[limit],
    perMinute,
    demandPerMinute,
    utilisation,
    headroom: perMinute - demandPerMinute,
    verdict: utilisation >= 1 ? "cannot-carry" : utilisation > target ? "above-target" : "fits",
    limitNeeded: Math.ceil(demandPerMinute / target),
    maxTasksPerHour: Math.floor(((perMinute * target) / perTask) * 60),
  };
}

/** Seconds a model call waits for the binding limit: it admits `capacityPerSecond` calls a second. */
function rateLimitWait(input: PlanInput, binding: LimitReport | undefined): number | null {
  if (!binding) return 0;
  if (binding.verdict === "cannot-carry") return null;
  const capacityPerSecond = binding.perMinute / (unitsPerTask(input, binding.limit) / input.callsPerTask) / 60;
  return md1Wait(binding.utilisation, 1 / capacityPerSecond);
}

export function planCapacity(input: PlanInput): CapacityPlan {
  const arrivals = input.tasksPerHour / 3600;
  const steps = input.callsPerTask + input.toolCallsPerTask;
  const target = input.targetUtilisation;
  const limits = LIMIT_KINDS.flatMap((k) => {
    const perMinute = input.limits[k];
    return perMinute === undefined ? [] : [limitReport(input, k, perMinute)];
  });
  const binding = [...limits].sort((a, b) => b.utilisation - a.utilisation)[0];
  const fits = limits.every((l) => l.verdict !== "cannot-carry");
  const rateWait = rateLimitWait(input, binding);

  const baseRun = input.callsPerTask * input.latencySeconds + input.toolCallsPerTask * input.toolLatencySeconds + (steps * input.cpuMs.planner) / 1000;
  const taskRun = rateWait === null ? null : baseRun + input.callsPerTask * rateWait;
  const concurrentTasks = arrivals * (taskRun ?? baseRun);
  const plannerSlotsNeeded = Math.ceil(concurrentTasks / target);
  const plannerHoldingCores = (concurrentTasks * input.plannerHoldUs) / 1_000_000;
  const cpuCores = {
    planner: (arrivals * steps * input.cpuMs.planner) / 1000 + plannerHoldingCores,
    executor: (arrivals * input.toolCallsPerTask * input.cpuMs.executor) / 1000,
    gateway: (arrivals * input.callsPerTask * input.cpuMs.gateway) / 1000,
    checkpoint: (arrivals * steps * input.cpuMs.checkpoint) / 1000,
  };
  const mem = input.plannerMemory;
  const plannerTasksByMemory = mem.maxRssMb > 0 ? Math.max(0, Math.floor(((mem.maxRssMb - mem.baseMb) * 1024) / mem.perTaskKb)) : Infinity;
  const tasksEach = Math.min(input.plannerSlots, plannerTasksByMemory);
  if (tasksEach < 1) throw new RangeError(`a planner's memory cap of ${mem.maxRssMb} MB leaves no room for a task beyond its own ${mem.baseMb} MB`);
  const planners = Math.max(1, Math.ceil(plannerSlotsNeeded / tasksEach), Math.ceil(cpuCores.planner / target));
  const tasksPerPlanner = concurrentTasks / planners;
  const executors = input.toolCallsPerTask === 0 ? 0 : Math.max(1, Math.ceil(cpuCores.executor / target));
  const gateways = Math.max(1, Math.ceil(cpuCores.gateway / target));
  const checkpoints = Math.max(1, Math.ceil(cpuCores.checkpoint / target));
  const plannerWait = taskRun === null ? null : finite(mmcWait(planners * tasksEach, arrivals, taskRun));

  const perTask = (input.callsPerTask * (input.inputTokensPerCall * input.price.input + input.outputTokensPerCall * input.price.output)) / 1_000_000;
  const tasksPerDay = input.tasksPerHour * 24;
  return {
    load: {
      tasksPerSecond: arrivals,
      callsPerMinute: (input.tasksPerHour / 60) * input.callsPerTask,
      toolCallsPerSecond: arrivals * input.toolCallsPerTask,
      inputTokensPerMinute: (input.tasksPerHour / 60) * input.callsPerTask * input.inputTokensPerCall,
      outputTokensPerMinute: (input.tasksPerHour / 60) * input.callsPerTask * input.outputTokensPerCall,
    },
    limits,
    fits,
    binding: binding?.limit ?? null,
    queueing: {
      rateLimitWaitPerCall: rateWait,
      plannerWait,
      taskRunSeconds: taskRun,
      taskLatencySeconds: taskRun === null || plannerWait === null ? null : plannerWait + taskRun,
    },
    fleet: {
      concurrentTasks,
      plannerSlotsNeeded,
      planners,
      plannerTasksByMemory,
      tasksPerPlanner,
      plannerRssMb: mem.baseMb + (tasksPerPlanner * mem.perTaskKb) / 1024,
      executors,
      gateways,
      checkpoints,
      cpuCores,
      plannerHoldingCores,
    },
    cost: { perTask, perDay: perTask * tasksPerDay, tasksPerDay },
  };
}

const finite = (n: number): number | null => (Number.isFinite(n) ? n : null);
