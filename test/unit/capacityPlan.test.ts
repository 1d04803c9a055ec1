/**
 * capacity plan - the model (src/capacity) and the command's flags, output and exit codes (app/client/plan.ts).
 */
import { describe, expect, it } from "vitest";
import { PLAN_EXIT, runPlan } from "../../app/client/plan";
import { processIo } from "../../app/client";
import { erlangC, md1Wait, mmcWait, planCapacity, verifySetup, type PlanInput } from "../../src/capacity";

/** The process's own I/O, with what the command prints kept instead of written. */
function captured() {
  let out = "";
  let err = "";
  const io = { ...processIo(), out: (t: string) => void (out += t), err: (t: string) => void (err += t) };
  return { io, stdout: () => out, stderr: () => err };
}

async function plan(argv: string[], env: NodeJS.ProcessEnv = { CLAWFLEET_PLANNER_SLOTS: "4" }) {
  const c = captured();
  const code = await runPlan(argv, c.io, env);
  return { code, stdout: c.stdout(), stderr: c.stderr() };
}

const REFERENCE = ["--tasks-per-hour", "10000", "--calls-per-task", "6", "--rpm", "1000", "--latency", "2s"];

const BASE: PlanInput = {
  tasksPerHour: 10_000,
  callsPerTask: 6,
  toolCallsPerTask: 5,
  inputTokensPerCall: 2000,
  outputTokensPerCall: 300,
  latencySeconds: 2,
  toolLatencySeconds: 0.2,
  limits: { rpm: 4000 },
  plannerSlots: 4,
  cpuMs: { planner: 9.3, executor: 9.3, gateway: 9.3, checkpoint: 9.3 },
  // Nothing for holding a task, and no memory cap: the cases below that are not about them.
  plannerHoldUs: 0,
  plannerMemory: { baseMb: 160, perTaskKb: 50, maxRssMb: 0 },
  targetUtilisation: 0.8,
  price: { input: 3, output: 15 },
};

describe("capacity plan - the reference exercise", () => {
  it("10,000 tasks/h × 6 calls against 1,000 RPM: zero headroom, cannot carry it, exit 3, and names the limit and rate that would", async () => {
    const r = await plan(REFERENCE);
    expect(r.code).toBe(PLAN_EXIT.cannotCarry);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/RPM\s+1,000\s+1,000\s+100%\s+0 \(0%\)\s+CANNOT CARRY/);
    expect(r.stdout).toContain("RPM CANNOT carry this load: it needs 1,000 requests/min against a limit of 1,000 (zero headroom). Any burst is refused");
    expect(r.stdout).toContain("A limit of 1,250 RPM would carry it at 80% utilisation, or at most 8,000 tasks/h at 1,000 RPM.");
    expect(r.stdout).toMatch(/rate-limit wait per call \(M\/D\/1\)\s+unbounded/);
  });

  it("--json of the reference: headroom 0, verdict cannot-carry, unbounded waits as null, exit_code 3", async () => {
    const r = await plan([...REFERENCE, "--json"]);
    expect(r.code).toBe(3);
    const j = JSON.parse(r.stdout) as Record<string, unknown> & { limits: Array<Record<string, unknown>>; queueing: Record<string, unknown> };
    expect(j.schema).toBe("clawfleet.plan/1");
    expect(j.fits).toBe(false);
    expect(j.exit_code).toBe(3);
    expect(j.limits).toEqual([
      { limit: "rpm", unit: "requests", per_minute: 1000, demand_per_minute: 1000, utilisation: 1, headroom: 0, verdict: "cannot-carry", limit_needed: 1250, max_tasks_per_hour: 8000 },
    ]);
    expect(j.queueing).toEqual({ rate_limit_wait_per_call_s: null, submit_to_started_s: null, task_run_s: null, submit_to_end_s: null });
  });
});

describe("capacity plan - a load that fits", () => {
  it("a comfortable load fits: exit 0, every limit 'fits', finite queueing, the fleet and the cost", async () => {
    const r = await plan(["--tasks-per-hour", "1000", "--calls-per-task", "4", "--rpm", "1000", "--itpm", "2000000", "--otpm", "400000", "--json"]);
    expect(r.code).toBe(PLAN_EXIT.fits);
    const j = JSON.parse(r.stdout) as {
      fits: boolean;
      limits: Array<{ verdict: string; utilisation: number }>;
      queueing: Record<string, number | null>;
      fleet: { planners: number; executors: number; gateways: number; checkpoints: number; planner_slots: number };
      cost: { per_task_usd: number; per_day_usd: number; tasks_per_day: number };
      advice: string[];
    };
    expect(j.fits).toBe(true);
    expect(j.limits.map((l) => l.verdict)).toEqual(["fits", "fits", "fits"]);
    expect(j.limits[0]?.utilisation).toBeCloseTo(4000 / 60 / 1000, 6);
    for (const v of Object.values(j.queueing)) expect(typeof v).toBe("number");
    expect(j.fleet.planners).toBeGreaterThanOrEqual(1);
    expect(j.fleet.executors).toBe(1);
    expect(j.fleet.gateways).toBe(1);
    expect(j.fleet.checkpoints).toBe(1);
    // 4 calls × (2000 × $3 + 300 × $15) / 1M = $0.042 a task; 24,000 tasks a day.
    expect(j.cost.per_task_usd).toBeCloseTo(0.042, 9);
    expect(j.cost.tasks_per_day).toBe(24_000);
    expect(j.cost.per_day_usd).toBeCloseTo(1008, 6);
    expect(j.advice).toEqual([]);
  });

  it("above the target but under the limit: exit 0 with a warning and the limit that meets the target", async () => {
    const r = await plan(["--tasks-per-hour", "10000", "--calls-per-task", "6", "--rpm", "1100"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/RPM carries this load at 90\.9% utilisation, above the 80% target/);
    expect(r.stdout).toContain("A limit of 1,250 RPM would carry it");
  });
});

describe("capacity plan - the model", () => {
  it("the planner count grows with the model's latency (slots held longer)", () => {
    const planners = [0.5, 1, 2, 4, 8].map((latencySeconds) => planCapacity({ ...BASE, latencySeconds }).fleet.planners);
    for (let i = 1; i < planners.length; i++) expect(planners[i]).toBeGreaterThan(planners[i - 1] ?? Infinity);
    // 2 s: a task holds its slot 6 × 2 + 5 × 0.2 + 11 × 9.3 ms = 13.1 s (+ rate wait); 2.78 tasks/s → 36.5 at once → 46 slots at 80% → 12 planners of 4.
    expect(planCapacity(BASE).fleet.planners).toBe(12);
  });

  it("the planner slots come from the configuration (CLAWFLEET_PLANNER_SLOTS) unless --planner-slots is given, and the source is stated", async () => {
    const fromConfig = JSON.parse((await plan([...REFERENCE, "--json"], { CLAWFLEET_PLANNER_SLOTS: "7" })).stdout) as { fleet: { planner_slots: number }; assumptions: Array<{ name: string; source: string }> };
    expect(fromConfig.fleet.planner_slots).toBe(7);
    expect(fromConfig.assumptions.find((a) => a.name === "planner slots per process")?.source).toBe("CLAWFLEET_PLANNER_SLOTS (configuration)");
    const fromFlag = JSON.parse((await plan([...REFERENCE, "--json", "--planner-slots", "3"], { CLAWFLEET_PLANNER_SLOTS: "7" })).stdout) as { fleet: { planner_slots: number } };
    expect(fromFlag.fleet.planner_slots).toBe(3);
  });

  it("each role's CPU defaults come from BENCHMARKS.md and say so; a flag overrides and is named as the source", async () => {
    const r = await plan(["--tasks-per-hour", "100", "--calls-per-task", "3", "--cpu-gateway-ms", "2"]);
    expect(r.stdout).toMatch(/CPU ms per planner step\s+1\.6\s+BENCHMARKS\.md \[1\]/);
    expect(r.stdout).toMatch(/CPU ms per executor tool call\s+1\.6\s+BENCHMARKS\.md \[1\]/);
    expect(r.stdout).toMatch(/CPU ms per checkpoint step\s+1\.1\s+BENCHMARKS\.md \[1\]/);
    expect(r.stdout).toMatch(/CPU ms per gateway model call\s+2\s+--cpu-gateway-ms/);
    expect(r.stdout).toContain("[1] Each role's CPU as bench/throughput/run.ts");
    const j = JSON.parse((await plan(["--tasks-per-hour", "100", "--calls-per-task", "3", "--cpu-checkpoint-ms", "0.25", "--json"])).stdout) as { assumptions: Array<{ name: string; value: string; source: string }> };
    expect(j.assumptions.find((a) => a.name === "CPU ms per checkpoint step")).toEqual({ name: "CPU ms per checkpoint step", value: "0.25", source: "--cpu-checkpoint-ms" });
    expect(j.assumptions.find((a) => a.name === "CPU ms per gateway model call")).toEqual({ name: "CPU ms per gateway model call", value: "5.7", source: "BENCHMARKS.md [1]" });
  });

  it("processes are sized by CPU too: at 0.5 s of CPU per step, one core per planner process", () => {
    const p = planCapacity({ ...BASE, plannerSlots: 10_000, cpuMs: { planner: 500, executor: 500, gateway: 500, checkpoint: 250 } });
    // 2.78 tasks/s × 11 steps × 0.5 s = 15.3 cores → 20 planners at 80%; executors 2.78 × 5 × 0.5 = 6.9 → 9; gateways 8.3 → 11;
    // checkpoint writers 2.78 × 11 × 0.25 = 7.6 cores → 10.
    expect(p.fleet.planners).toBe(20);
    expect(p.fleet.executors).toBe(9);
    expect(p.fleet.gateways).toBe(11);
    expect(p.fleet.checkpoints).toBe(10);
    expect(p.fleet.cpuCores.checkpoint).toBeCloseTo((10_000 / 3600) * 11 * 0.25, 9);
  });

  it("a planner spends CPU on each task it holds: longer model calls cost its planners more CPU for the same steps", () => {
    const at = (latencySeconds: number) => planCapacity({ ...BASE, plannerSlots: 100_000, latencySeconds, cpuMs: { ...BASE.cpuMs, planner: 1.6 }, plannerHoldUs: 40 });
    const p = at(30);
    // 2.78 tasks/s hold a slot 6 × 30 + 5 × 0.2 + 11 × 1.6 ms = 181.02 s, and the rate limit's waits: ~503 tasks at once, 40 µs each per second.
    expect(p.fleet.concurrentTasks).toBeCloseTo((10_000 / 3600) * (181.0176 + 6 * (p.queueing.rateLimitWaitPerCall ?? NaN)), 9);
    expect(p.fleet.plannerHoldingCores).toBeCloseTo(p.fleet.concurrentTasks * 40e-6, 12);
    expect(p.fleet.cpuCores.planner).toBeCloseTo((10_000 / 3600) * 11 * 0.0016 + p.fleet.plannerHoldingCores, 12);
    // The same steps at 2 s: the steps' CPU is the same, the holding about a fourteenth of it.
    expect(at(2).fleet.cpuCores.planner - at(2).fleet.plannerHoldingCores).toBeCloseTo(p.fleet.cpuCores.planner - p.fleet.plannerHoldingCores, 12);
    expect(at(2).fleet.plannerHoldingCores).toBeLessThan(p.fleet.plannerHoldingCores / 10);
  });

  it("a planner holds no more tasks than its memory cap leaves room for: the cap, not the slots, decides the planners", () => {
    const capped = (maxRssMb: number) => planCapacity({ ...BASE, plannerSlots: 2000, latencySeconds: 30, plannerMemory: { baseMb: 160, perTaskKb: 50, maxRssMb } });
    // 200 MB cap, 160 before any task, 50 KB a task: room for 819. 502.8 at once need 629 slots at 80 %: 1 planner of 2,000 slots, 1 of 819.
    const p = capped(200);
    expect(p.fleet.plannerTasksByMemory).toBe(819);
    expect(p.fleet.planners).toBe(1);
    expect(p.fleet.plannerRssMb).toBeCloseTo(160 + (p.fleet.concurrentTasks * 50) / 1024, 9);
    const tight = capped(170);
    // Room for 204: 629 slots need 4 planners, each holding a quarter of the tasks.
    expect(tight.fleet.plannerTasksByMemory).toBe(204);
    expect(tight.fleet.planners).toBe(4);
    expect(tight.fleet.tasksPerPlanner).toBeCloseTo(tight.fleet.concurrentTasks / 4, 9);
    expect(tight.fleet.plannerRssMb).toBeLessThan(170);
    expect(capped(0).fleet.plannerTasksByMemory).toBe(Infinity);
    expect(() => capped(160)).toThrow(/memory cap of 160 MB leaves no room for a task/);
  });

  it("the holding figures default from BENCHMARKS.md and say so; the memory cap comes from the configuration, and one below a planner's own size is refused", async () => {
    const r = await plan(["--tasks-per-hour", "100000", "--calls-per-task", "6", "--latency", "30s"], { CLAWFLEET_PLANNER_SLOTS: "2000", CLAWFLEET_PLANNER_MAX_RSS_MB: "200" });
    expect(r.code).toBe(PLAN_EXIT.fits);
    expect(r.stdout).toMatch(/planner CPU µs per task held per second\s+40\s+BENCHMARKS\.md \[2\]/);
    expect(r.stdout).toMatch(/planner RSS per task held, KB\s+50\s+BENCHMARKS\.md \[2\]/);
    expect(r.stdout).toMatch(/planner memory cap, MB\s+200\s+CLAWFLEET_PLANNER_MAX_RSS_MB \(configuration\)/);
    expect(r.stdout).toContain("[2] A planner holding tasks as bench/concurrency.ts measured it");
    expect(r.stdout).toMatch(/planners\s+8 \(2000 slots each, memory for 819 under its 200 MB cap; .* cores, 0\.20 of them holding tasks; ~191 MB each\)/);
    const j = JSON.parse((await plan(["--tasks-per-hour", "100000", "--calls-per-task", "6", "--latency", "30s", "--rss-per-task-kb", "10", "--json"], { CLAWFLEET_PLANNER_MAX_RSS_MB: "0" })).stdout) as {
      fleet: { planner_tasks_by_memory: number | null; planner_holding_cores: number };
      assumptions: Array<{ name: string; value: string; source: string }>;
    };
    expect(j.fleet.planner_tasks_by_memory).toBeNull();
    expect(j.fleet.planner_holding_cores).toBeGreaterThan(0.19);
    expect(j.assumptions.find((a) => a.name === "planner RSS per task held, KB")).toEqual({ name: "planner RSS per task held, KB", value: "10", source: "--rss-per-task-kb" });
    expect(j.assumptions.find((a) => a.name === "planner memory cap, MB")?.value).toBe("none");
    const refused = await plan(REFERENCE, { CLAWFLEET_PLANNER_MAX_RSS_MB: "150" });
    expect(refused.code).toBe(PLAN_EXIT.usage);
    expect(refused.stderr).toMatch(/CLAWFLEET_PLANNER_MAX_RSS_MB \(150\) leaves a planner no room for a task beyond its own 160 MB/);
  });

  it("queueing formulas: Erlang C, M/M/1 as M/M/c with c = 1, M/D/1 half of M/M/1", () => {
    expect(erlangC(2, 1)).toBeCloseTo(1 / 3, 12);
    // M/M/1, λ = 0.5, S = 1: Wq = ρ S / (1 − ρ) = 1.
    expect(mmcWait(1, 0.5, 1)).toBeCloseTo(1, 12);
    expect(md1Wait(0.5, 1)).toBeCloseTo(0.5, 12);
    expect(md1Wait(1, 1)).toBe(Infinity);
    expect(mmcWait(4, 4, 1)).toBe(Infinity);
  });

  it("--verify scales the rate and the limits together, on a window a tenth of the run that holds at least 10 calls", () => {
    const s = verifySetup({ ...BASE, limits: { rpm: 1000, itpm: 2_000_000 } }, 0.05, 60);
    expect(s.input.tasksPerHour).toBe(500);
    // 50 RPM: 10 calls take 12 s.
    expect(s.windowMs).toBe(12_000);
    expect(s.perWindow).toEqual({ rpm: 10, itpm: 20_000 });
    expect(s.plan.limits.map((l) => l.utilisation)).toEqual([1, 1]);
    expect(s.plan.fits).toBe(false);
  });
});

describe("capacity plan - bad flags", () => {
  const cases: Array<[string, string[], RegExp]> = [
    ["an unknown flag", [...REFERENCE, "--rpn", "5"], /--rpn/],
    ["a limit of 0", ["--tasks-per-hour", "10", "--calls-per-task", "2", "--rpm", "0"], /--rpm must be an integer ≥ 1, got "0"/],
    ["a duration without a number", [...REFERENCE, "--latency", "fast"], /--latency must be a duration/],
    ["no --tasks-per-hour", ["--calls-per-task", "6"], /--tasks-per-hour is required/],
    ["fractional calls", ["--tasks-per-hour", "10", "--calls-per-task", "1.5"], /--calls-per-task must be an integer/],
    ["a model without a price", [...REFERENCE, "--model", "gpt-9"], /--model "gpt-9" has no price \(known: .*claude-sonnet-5-5/],
    ["a target utilisation over 1", [...REFERENCE, "--target-utilisation", "1.5"], /--target-utilisation must be a number in \(0, 1\]/],
    ["a negative checkpoint CPU", [...REFERENCE, "--cpu-checkpoint-ms=-1"], /--cpu-checkpoint-ms must be a number ≥ 0, got "-1"/],
    ["a task that takes no memory", [...REFERENCE, "--rss-per-task-kb", "0"], /--rss-per-task-kb must be a number > 0, got "0"/],
    ["a negative holding CPU", [...REFERENCE, "--cpu-hold-us=-5"], /--cpu-hold-us must be a number ≥ 0, got "-5"/],
    ["--scale without --verify", [...REFERENCE, "--scale", "0.1"], /--scale is only for --verify/],
    ["a --verify whose tools the simulated model cannot play", [...REFERENCE, "--verify", "--tool-calls-per-task", "2"], /--tool-calls-per-task must be calls-per-task − 1/],
  ];
  it.each(cases)("%s: exit 2, the flag named on stderr, nothing on stdout", async (_what, argv, message) => {
    const r = await plan(argv);
    expect(r.code).toBe(PLAN_EXIT.usage);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain("usage: clawfleet plan");
    expect(r.stdout).toBe("");
  });

  it("--help prints every flag and the exit codes, exit 0", async () => {
    const r = await plan(["--help"]);
    expect(r.code).toBe(0);
    for (const flag of ["--tasks-per-hour", "--input-tokens", "--planner-slots", "--cpu-planner-ms", "--cpu-checkpoint-ms", "--cpu-hold-us", "--planner-base-rss-mb", "--rss-per-task-kb", "--target-utilisation", "--verify", "--scale", "--seconds", "--json"])
      expect(r.stdout).toContain(flag);
    expect(r.stdout).toContain("3 a limit cannot carry it");
  });
});
