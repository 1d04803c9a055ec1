/**
 * Prometheus metrics of one process. Every metric is declared here with its
 * full label set, so a label prom-client was not told about cannot appear.
 *
 * Each series is recorded where its work happens: task and step series by the
 * planner that runs the task, LLM series by the rate-gateway around the provider
 * call, tool series by the executor, cluster-wide gauges by the metrics role.
 * Every task-level series carries `agent` and `prompt_version`; every series
 * carries `node` (the process's node id) as a default label.
 *
 * `enabled: false` (CLAWFLEET_METRICS=off) records none of Clawfleet's own series
 * (the process defaults stay): the baseline for measuring their overhead.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { TASK_STATUSES } from "../contracts";
import { cachedQuery, type CachedQueryOptions } from "./cachedQuery";

/** OpenTelemetry GenAI semantic conventions, bucket advice for `gen_ai.client.token.usage`. */
export const GEN_AI_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
/** OpenTelemetry GenAI semantic conventions, bucket advice for `gen_ai.client.operation.duration` (seconds). */
export const GEN_AI_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];

const TASK_DURATION_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
const STEPS_BUCKETS = [1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64];
const TOOL_CALLS_BUCKETS = [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32];
const TOOL_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120];
const WAIT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** The labels every task-level series carries. */
export interface TaskLabels {
  agent: string;
  prompt_version: string;
}

export interface LlmLabels extends TaskLabels {
  model: string;
}

export type TaskOutcome = "succeeded" | "failed";
/** How an attempt (one lease, one planner) ended. */
export type AttemptOutcome = "succeeded" | "failed" | "released" | "abandoned";
export type LlmCallOutcome = "ok" | "rate_limited" | "error";
/** A canary judge's decision: up a step, promoted to stable (after its last step), or rolled back. */
export type CanaryDecision = "step" | "promoted" | "rolled_back";
export const CANARY_DECISIONS: readonly CanaryDecision[] = ["step", "promoted", "rolled_back"];
/** Where a call waited: the gateway's priority queue, or the planner backing off after a refusal. */
export type WaitStage = "gateway_queue" | "planner_backoff";

export interface TaskFinished {
  errorType?: string;
  /** From the task's creation (queueing included) to its end. */
  durationS: number;
  /** Checkpointed steps (LLM and tool), earlier attempts included. */
  steps: number;
  toolCalls: number;
}

export interface LlmCallRecord {
  usage: { input_tokens: number; output_tokens: number; cache_read_input_tokens: number; cache_creation_input_tokens: number };
  costUsd: number;
}

export interface ClusterSource {
  countByStatus(): Promise<Record<string, number>>;
  queueDepth(): Promise<{ waiting: number; inFlight: number } | undefined>;
  /** Age of the oldest wake-up no planner has taken yet; undefined where it cannot be told. */
  queueLagSeconds?(): Promise<number | undefined>;
}

type TL = "agent" | "prompt_version";

export class Metrics {
  readonly registry = new Registry();
  private readonly on: boolean;

  private readonly tasksSucceeded: Counter<TL>;
  private readonly tasksFailed: Counter<TL | "error_type">;
  private readonly deadLetters: Counter<TL | "error_type">;
  private readonly taskDuration: Histogram<TL | "outcome">;
  private readonly taskSteps: Histogram<TL | "outcome">;
  private readonly taskToolCalls: Histogram<TL | "outcome">;
  private readonly attempts: Counter<TL | "outcome">;
  private readonly steps: Counter<TL | "kind">;
  private readonly resumes: Counter<TL>;
  private readonly retries: Counter<TL>;
  private readonly leasesLost: Counter<TL>;
  private readonly duplicates: Counter<TL | "tool">;
  private readonly llmCalls: Counter<TL | "model" | "outcome">;
  private readonly llmTokens: Counter<TL | "model" | "type">;
  private readonly llmTokenUsage: Histogram<TL | "model" | "type">;
  private readonly llmCost: Counter<TL | "model">;
  private readonly llmDuration: Histogram<TL | "model">;
  private readonly waits: Histogram<TL | "model" | "stage">;
  private readonly refusals: Counter<TL | "model" | "source">;
  private readonly toolCalls: Counter<TL | "tool" | "outcome">;
  private readonly toolDuration: Histogram<TL | "tool">;
  private readonly canaryWeight: Gauge<"agent" | "version">;
  private readonly canaryDecisions: Counter<"agent" | "decision">;

  private source: ClusterSource | undefined;
  private leaseSource: (() => number) | undefined;
  private switchSource: (() => ReadonlyArray<{ kind: string; name: string; paused: boolean }>) | undefined;

  constructor(defaultLabels: Record<string, string>, opts: { enabled?: boolean } = {}) {
    this.on = opts.enabled ?? true;
    this.registry.setDefaultLabels(defaultLabels);
    collectDefaultMetrics({ register: this.registry, prefix: "clawfleet_process_" });
    const registers = [this.registry];
    // prom-client names these gauges `…_total`, a suffix Prometheus keeps for counters (promtool check metrics
    // rejects them); `clawfleet_process_nodejs_active_resources{type}` tells the same.
    for (const name of ["active_handles_total", "active_requests_total", "active_resources_total"]) this.registry.removeSingleMetric(`clawfleet_process_nodejs_${name}`);
    const T: TL[] = ["agent", "prompt_version"];

    // --- tasks (planner) -------------------------------------------------------------------
    this.tasksSucceeded = new Counter({ name: "clawfleet_tasks_succeeded_total", help: "Tasks that ended succeeded.", labelNames: T, registers });
    this.tasksFailed = new Counter({
      name: "clawfleet_tasks_failed_total",
      help: "Tasks that ended failed, by error type (completion rate = succeeded / (succeeded + failed)).",
      labelNames: [...T, "error_type"],
      registers,
    });
    this.deadLetters = new Counter({
      name: "clawfleet_dead_letters_total",
      help: "Tasks put on the dead-letter list (failed for good; redrive puts them back).",
      labelNames: [...T, "error_type"],
      registers,
    });
    this.taskDuration = new Histogram({
      name: "clawfleet_task_duration_seconds",
      help: "Task duration from submission to its end, queueing and every attempt included.",
      labelNames: [...T, "outcome"],
      buckets: TASK_DURATION_BUCKETS,
      registers,
    });
    this.taskSteps = new Histogram({
      name: "clawfleet_task_steps",
      help: "Checkpointed steps (LLM and tool) per finished task.",
      labelNames: [...T, "outcome"],
      buckets: STEPS_BUCKETS,
      registers,
    });
    this.taskToolCalls = new Histogram({
      name: "clawfleet_task_tool_calls",
      help: "Tool calls per finished task.",
      labelNames: [...T, "outcome"],
      buckets: TOOL_CALLS_BUCKETS,
      registers,
    });
    this.attempts = new Counter({
      name: "clawfleet_task_attempts_total",
      help: "Attempts settled by this planner, by outcome (succeeded, failed, released, abandoned).",
      labelNames: [...T, "outcome"],
      registers,
    });
    this.steps = new Counter({ name: "clawfleet_steps_total", help: "Checkpointed steps written by this planner, by kind (llm, tool).", labelNames: [...T, "kind"], registers });
    this.resumes = new Counter({ name: "clawfleet_task_resumes_total", help: "Attempts that resumed a task from its checkpoints.", labelNames: T, registers });
    this.retries = new Counter({
      name: "clawfleet_task_retries_total",
      help: "Attempts ended by a passing failure; the task goes back to the queue and is retried.",
      labelNames: T,
      registers,
    });
    this.leasesLost = new Counter({ name: "clawfleet_leases_lost_total", help: "Task leases this planner lost while running the task.", labelNames: T, registers });
    this.duplicates = new Counter({
      name: "clawfleet_duplicate_tool_calls_total",
      help: "Tool calls repeating an earlier call of the same task (same tool, same input hash).",
      labelNames: [...T, "tool"],
      registers,
    });
    const switches = () => this.switchSource;
    new Gauge({
      name: "clawfleet_switch_paused",
      help: "Kill switches as this process's switch board last read them: 1 paused, 0 lifted (by kind: agent, tool, model, prompt).",
      labelNames: ["kind", "name"],
      registers,
      collect() {
        const src = switches();
        if (!src) return;
        this.reset();
        for (const s of src()) this.set({ kind: s.kind, name: s.name }, s.paused ? 1 : 0);
      },
    });
    const leases = () => this.leaseSource;
    new Gauge({
      name: "clawfleet_leases_held",
      help: "Task leases this planner holds now (tasks running here).",
      registers,
      collect() {
        const src = leases();
        if (src) this.set(src());
      },
    });

    // --- LLM calls (rate-gateway) -------------------------------------------------------------
    this.llmCalls = new Counter({
      name: "clawfleet_llm_calls_total",
      help: "LLM calls made by this gateway, by outcome (ok, rate_limited, error).",
      labelNames: [...T, "model", "outcome"],
      registers,
    });
    this.llmTokens = new Counter({
      name: "clawfleet_llm_tokens_total",
      help: "Tokens used, by type (input, output, cache_read, cache_creation).",
      labelNames: [...T, "model", "type"],
      registers,
    });
    this.llmTokenUsage = new Histogram({
      name: "clawfleet_llm_token_usage",
      help: "Tokens per LLM call, by type (input, output); GenAI semantic-convention buckets.",
      labelNames: [...T, "model", "type"],
      buckets: GEN_AI_TOKEN_BUCKETS,
      registers,
    });
    this.llmCost = new Counter({ name: "clawfleet_llm_cost_usd_total", help: "Cost of LLM calls in US dollars, at the configured prices.", labelNames: [...T, "model"], registers });
    this.llmDuration = new Histogram({
      name: "clawfleet_llm_call_duration_seconds",
      help: "Provider call latency (rate-limit waits excluded); GenAI semantic-convention buckets.",
      labelNames: [...T, "model"],
      buckets: GEN_AI_DURATION_BUCKETS,
      registers,
    });
    this.waits = new Histogram({
      name: "clawfleet_rate_limit_wait_seconds",
      help: "Time LLM calls waited for rate-limit capacity, by stage (gateway_queue, planner_backoff).",
      labelNames: [...T, "model", "stage"],
      buckets: WAIT_BUCKETS,
      registers,
    });
    this.refusals = new Counter({
      name: "clawfleet_rate_limit_refusals_total",
      help: "LLM calls refused for rate limits, by source (gateway: our buckets; provider: a 429).",
      labelNames: [...T, "model", "source"],
      registers,
    });

    // --- tools (executor) -----------------------------------------------------------------------
    this.toolCalls = new Counter({ name: "clawfleet_tool_calls_total", help: "Tool executions, by outcome (ok, error).", labelNames: [...T, "tool", "outcome"], registers });
    this.toolDuration = new Histogram({
      name: "clawfleet_tool_duration_seconds",
      help: "Tool execution time.",
      labelNames: [...T, "tool"],
      buckets: TOOL_DURATION_BUCKETS,
      registers,
    });

    // --- canary judge (the intake that leads it) ------------------------------------------------
    this.canaryWeight = new Gauge({
      name: "clawfleet_canary_weight",
      help: "Percent of an agent's new tasks each version runs while a canary is rolled out (exported by the judge's leader).",
      labelNames: ["agent", "version"],
      registers,
    });
    this.canaryDecisions = new Counter({
      name: "clawfleet_canary_decisions_total",
      help: "Canary judge decisions, by decision (step: up a step; promoted: made stable; rolled_back: harm found).",
      labelNames: ["agent", "decision"],
      registers,
    });

    // --- cluster-wide gauges (metrics role) ----------------------------------------------------
    const source = () => this.source;
    new Gauge({
      name: "clawfleet_tasks",
      help: "Tasks in the store by status (cluster-wide; exported by the metrics role).",
      labelNames: ["status"],
      registers,
      async collect() {
        const src = source();
        if (!src) return;
        const counts = await src.countByStatus().catch(() => undefined);
        if (!counts) return;
        for (const s of TASK_STATUSES) this.set({ status: s }, counts[s] ?? 0);
      },
    });
    new Gauge({
      name: "clawfleet_queue_messages",
      help: "Queue depth: wake-ups on channel tasks.ready waiting (not yet delivered) and in flight (delivered, not acknowledged).",
      labelNames: ["state"],
      registers,
      async collect() {
        const src = source();
        if (!src) return;
        const d = await src.queueDepth().catch(() => undefined);
        if (!d) return;
        this.set({ state: "waiting" }, d.waiting);
        this.set({ state: "in_flight" }, d.inFlight);
      },
    });
    new Gauge({
      name: "clawfleet_queue_consumer_lag_seconds",
      help: "Consumer lag: age of the oldest wake-up the planners have not taken yet (0 when none waits).",
      registers,
      async collect() {
        const lag = await source()
          ?.queueLagSeconds?.()
          .catch(() => undefined);
        if (lag !== undefined) this.set(lag);
      },
    });
  }

  /**
   * The metrics role attaches the cluster-wide source; other processes export only their own series. `countByStatus` (a database query) is cached: scrapes
   * within `cache.ttlMs` (5 s) of it, and concurrent ones, share one query.
   */
  attachClusterSource(source: ClusterSource | undefined, cache: CachedQueryOptions = {}): void {
    this.source = source && { ...source, countByStatus: cachedQuery(() => source.countByStatus(), cache) };
  }

  /** A process with a switch board (planner, intake) exports the switches it sees. */
  attachSwitchSource(switches: (() => ReadonlyArray<{ kind: string; name: string; paused: boolean }>) | undefined): void {
    this.switchSource = switches;
  }

  /** The planner tells how many task leases it holds. */
  attachLeaseSource(held: (() => number) | undefined): void {
    this.leaseSource = held;
  }

  // --- planner ------------------------------------------------------------------------------------

  taskFinished(l: TaskLabels, outcome: TaskOutcome, f: TaskFinished): void {
    if (!this.on) return;
    const labels = { agent: l.agent, prompt_version: l.prompt_version };
    if (outcome === "succeeded") this.tasksSucceeded.inc(labels);
    else {
      const failed = { ...labels, error_type: f.errorType ?? "internal_error" };
      this.tasksFailed.inc(failed);
      this.deadLetters.inc(failed);
    }
    this.taskDuration.observe({ ...labels, outcome }, Math.max(0, f.durationS));
    this.taskSteps.observe({ ...labels, outcome }, f.steps);
    this.taskToolCalls.observe({ ...labels, outcome }, f.toolCalls);
  }

  attemptSettled(l: TaskLabels, outcome: AttemptOutcome): void {
    if (this.on) this.attempts.inc({ agent: l.agent, prompt_version: l.prompt_version, outcome });
  }

  stepCheckpointed(l: TaskLabels, kind: "llm" | "tool"): void {
    if (this.on) this.steps.inc({ agent: l.agent, prompt_version: l.prompt_version, kind });
  }

  taskResumed(l: TaskLabels): void {
    if (this.on) this.resumes.inc({ agent: l.agent, prompt_version: l.prompt_version });
  }

  taskRetried(l: TaskLabels): void {
    if (this.on) this.retries.inc({ agent: l.agent, prompt_version: l.prompt_version });
  }

  leaseLost(l: TaskLabels): void {
    if (this.on) this.leasesLost.inc({ agent: l.agent, prompt_version: l.prompt_version });
  }

  duplicateToolCall(l: TaskLabels, tool: string): void {
    if (this.on) this.duplicates.inc({ agent: l.agent, prompt_version: l.prompt_version, tool });
  }

  // --- rate limits (gateway and planner) --------------------------------------------------------

  rateLimitWait(l: LlmLabels, stage: WaitStage, seconds: number): void {
    if (this.on) this.waits.observe({ agent: l.agent, prompt_version: l.prompt_version, model: l.model, stage }, Math.max(0, seconds));
  }

  rateLimitRefused(l: LlmLabels, source: "gateway" | "provider"): void {
    if (this.on) this.refusals.inc({ agent: l.agent, prompt_version: l.prompt_version, model: l.model, source });
  }

  // --- gateway ------------------------------------------------------------------------------------

  llmCall(l: LlmLabels, outcome: LlmCallOutcome, durationS: number, r?: LlmCallRecord): void {
    if (!this.on) return;
    const labels = { agent: l.agent, prompt_version: l.prompt_version, model: l.model };
    this.llmCalls.inc({ ...labels, outcome });
    if (outcome === "ok") this.llmDuration.observe(labels, durationS);
    if (!r) return;
    const u = r.usage;
    this.llmTokens.inc({ ...labels, type: "input" }, u.input_tokens);
    this.llmTokens.inc({ ...labels, type: "output" }, u.output_tokens);
    this.llmTokens.inc({ ...labels, type: "cache_read" }, u.cache_read_input_tokens);
    this.llmTokens.inc({ ...labels, type: "cache_creation" }, u.cache_creation_input_tokens);
    // The conventions' token histogram counts input (cached included) and output per call.
    this.llmTokenUsage.observe({ ...labels, type: "input" }, u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens);
    this.llmTokenUsage.observe({ ...labels, type: "output" }, u.output_tokens);
    this.llmCost.inc(labels, r.costUsd);
  }

  // --- canary judge -------------------------------------------------------------------------------

  /** The running canaries' split as the judge sees it now, replacing the last one (none: the judge does not lead, or nothing runs). */
  canaryWeights(weights: ReadonlyArray<{ agent: string; version: string; weight: number }>): void {
    if (!this.on) return;
    this.canaryWeight.reset();
    for (const w of weights) this.canaryWeight.set({ agent: w.agent, version: w.version }, w.weight);
  }

  /**
   * Starts the agent's decision series at 0, so that its first decision is an increase that `increase()`
   * sees (a series born at 1 shows none).
   */
  canaryWatched(agent: string): void {
    if (this.on) for (const decision of CANARY_DECISIONS) this.canaryDecisions.inc({ agent, decision }, 0);
  }

  canaryDecided(agent: string, decision: CanaryDecision): void {
    if (this.on) this.canaryDecisions.inc({ agent, decision });
  }

  // --- executor -----------------------------------------------------------------------------------

  toolCall(l: TaskLabels, tool: string, ok: boolean, durationS: number): void {
    if (!this.on) return;
    const labels = { agent: l.agent, prompt_version: l.prompt_version, tool };
    this.toolCalls.inc({ ...labels, outcome: ok ? "ok" : "error" });
    this.toolDuration.observe(labels, Math.max(0, durationS));
  }
}
