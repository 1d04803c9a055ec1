/**
 * A role's cold start: how long a Clawfleet process takes from its spawn to its first
 * 200 on `/health/ready`, the CPU it used by then, and its resident memory once ready. This is what a pod that Kubernetes (or KEDA, scaling on the queue) adds
 * costs before it does any work, and what a restarted one costs before it resumes.
 *
 * Each role of the split layout (bench/throughput/layouts.ts) is started `--runs`
 * times, one process at a time, beside one checkpoint process that stays up (the
 * other roles' readiness reads through it), on NATS, Redis and Postgres, the rate
 * gateway's provider being the simulated model in a process of its own (as a real
 * provider would be); every run stops its process (SIGTERM) before the next starts.
 * Tracing is off, as by default.
 *
 *   npx tsx bench/startup.ts [--runs 5] [--roles api,intake,metrics:checkpoint:planner:…] [--profile dir]
 *
 * `--profile dir` runs each started process under the CPU profiler (dir/<role>/, one profile per
 * start, start-up and stop), read with bench/throughput/profileTop.ts.
 * Runs the built package (dist/) when it is newer than the sources, as `clawfleet start` does.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { EXECUTOR_ROLES, startNodeProcess, stopAll, type NodeProcess } from "../testkit/cluster";
import { createScratch } from "../testkit/scratch";
import { measuredEnv, startProvider } from "./throughput/layouts";
import { cpuMs, loadLine, percentile, rssOf } from "./throughput/meters";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    roles: { type: "string" },
    profile: { type: "string" },
  },
});
const RUNS = Number(args.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new RangeError(`--runs must be a positive integer, got ${args.runs}`);
/** The processes of the split layout, by their SERVICES. */
const ROLE_SETS = args.roles?.split(":") ?? ["api,intake,metrics", "checkpoint", "planner", EXECUTOR_ROLES, "rate-gateway"];
const READY_POLL_MS = 10;
const READY_TIMEOUT_MS = 120_000;

interface Start {
  readyMs: number;
  cpuMs: number;
  rssMiB: number;
}

async function startOnce(env: Record<string, string>, name: string): Promise<Start> {
  const spawnedAt = performance.now();
  const node = await startNodeProcess({
    name,
    env: { LOG_LEVEL: "warn", ...env, ...(args.profile ? measuredEnv(path.join(args.profile, name.replace(/,/g, "+")), false) : {}) },
    timeoutMs: READY_TIMEOUT_MS,
    pollMs: READY_POLL_MS,
  });
  try {
    const pid = node.proc.pid ?? 0;
    const started: Start = { readyMs: performance.now() - spawnedAt, cpuMs: cpuMs(pid), rssMiB: rssOf(pid) / 2 ** 20 };
    await stopAll([node]);
    const exit = await node.exited;
    // A start that does not stop cleanly is no start to count.
    if (exit.code !== 0) throw new Error(`${name} did not stop cleanly (${JSON.stringify(exit)}):\n${node.output().slice(-4000)}`);
    return started;
  } finally {
    node.kill();
  }
}

const median = (xs: readonly number[]) => percentile([...xs].sort((a, b) => a - b), 50);

async function main(): Promise<void> {
  process.stdout.write(`start-up bench: ${RUNS} cold starts per role, one at a time, tracing off; ${loadLine()}\n`);
  const scratch = await createScratch("benchstart");
  const up: NodeProcess[] = [];
  try {
    const provider = await startProvider(undefined);
    up.push(provider);
    const env = (roles: string) => ({ ...scratch.env(roles), ANTHROPIC_BASE_URL: `http://127.0.0.1:${provider.port}` });
    up.push(await startNodeProcess({ name: "checkpoint", env: { ...env("checkpoint"), LOG_LEVEL: "warn" }, timeoutMs: READY_TIMEOUT_MS }));
    process.stdout.write(`  ${"role (SERVICES)".padEnd(34)} ${"to ready".padStart(9)} ${"CPU by then".padStart(12)} ${"RSS at ready".padStart(13)}   (medians; range)\n`);
    for (const roles of ROLE_SETS) {
      const starts: Start[] = [];
      for (let i = 0; i < RUNS; i++) starts.push(await startOnce(env(roles), roles));
      const col = (f: (s: Start) => number, unit: string, width: number) => `${median(starts.map(f)).toFixed(0)} ${unit}`.padStart(width);
      const range = (f: (s: Start) => number) => `${Math.min(...starts.map(f)).toFixed(0)}–${Math.max(...starts.map(f)).toFixed(0)}`;
      process.stdout.write(
        `  ${roles.padEnd(34)} ${col((s) => s.readyMs, "ms", 9)} ${col((s) => s.cpuMs, "ms", 12)} ${col((s) => s.rssMiB, "MiB", 13)}   (${range((s) => s.readyMs)} ms; ${range((s) => s.cpuMs)} ms; ${range((s) => s.rssMiB)} MiB)\n`,
      );
    }
    process.stdout.write(`  ${loadLine()}\n`);
  } finally {
    await stopAll(up);
    await scratch.remove();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
