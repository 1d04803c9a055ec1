/**
 * The three layouts the throughput benchmark runs Clawfleet in, each as real
 * `clawfleet start` processes with the order-router example and the built-in
 * simulated model at zero latency:
 *
 *   one-process  every role in one node, on NATS, Redis and Postgres
 *   split        six nodes: checkpoint, rate-gateway, executor+tools, two planners, api+intake+metrics
 *   embedded     one node, no transporter: PGlite and the in-process queue
 *
 * Every node is preloaded with brokerCounter.cjs (its Moleculer traffic) and may
 * be profiled (`--cpu-prof`), as may the simulated provider's process.
 *
 * The simulated model stands for the provider. By default (`provider: "process"`) it
 * runs as its own `clawfleet sim` process that every node reaches over HTTP, as a
 * provider is reached, so its CPU is measured apart from Clawfleet's; with
 * `provider: "in-process"` it runs inside the node that serves the rate-gateway role
 * (the embedded default), and its cost is counted as that node's.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { EXECUTOR_ROLES, freePort, ORDER_ROUTER_SIM_POLICIES, packageResolutionEnv, ROOT, spawnCaptured, startNodeProcess, stopAll, type NodeProcess } from "../../testkit/cluster";
import { createScratch, type Scratch } from "../../testkit/scratch";
import type { BarePlan, ProviderClient } from "./barePlan";
import { BROKER_COUNTER, sleep } from "./meters";

export const LAYOUTS = ["one-process", "split", "embedded"] as const;
export type Layout = (typeof LAYOUTS)[number];

export interface RunningLayout {
  layout: Layout;
  peer: "clawfleet" | "bare";
  base: string;
  nodes: NodeProcess[];
  /** The distributed layouts' database and namespace; none when embedded. */
  scratch: Scratch | undefined;
  /** Where the nodes' broker counts are written. */
  countsDir: string;
  /** The simulated provider's own process, when it runs apart: its CPU is not Clawfleet's. */
  provider?: NodeProcess;
  stop(): Promise<void>;
}

export interface LayoutOptions {
  /** Tasks one planner process runs at once (CLAWFLEET_PLANNER_SLOTS). */
  slots: number;
  /** A folder for `.cpuprofile` files, one per process; none: not profiled. */
  profileDir?: string;
  /** Where the simulated model runs (see the module's comment). @default "process" */
  provider?: "process" | "in-process";
  /** More environment for Clawfleet's processes (`--clawfleet-env`), to compare settings; not the bare pipeline's. */
  env?: Record<string, string>;
}

/** `clawfleet sim` as its own process at zero latency, with no rate limit: the provider the nodes call (profiled into `profileDir`). */
export async function startProvider(profileDir: string | undefined): Promise<NodeProcess> {
  const port = await freePort();
  const bin = path.join(ROOT, "bin", "clawfleet.js");
  const args = [bin, "sim", "--port", String(port), "--latency-ms", "0", "--policies", ORDER_ROUTER_SIM_POLICIES];
  // Without the broker counter: the provider has no broker.
  return startAnswering("provider", port, args, { ...packageResolutionEnv(), ...measuredEnv(profileDir, false) }, "/_sim/stats");
}

/** A process spawned with `args`, waited on until `probe` on its port answers 200 (killed if it never does). */
async function startAnswering(name: string, port: number, args: readonly string[], env: Record<string, string>, probe: string): Promise<NodeProcess> {
  const { proc, output, exited } = spawnCaptured(args, env);
  const node: NodeProcess = {
    name,
    port,
    proc,
    output,
    exited,
    kill: (signal = "SIGKILL") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
  };
  const deadline = Date.now() + 300_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited during start-up:\n${output().slice(-3000)}`);
    if (await fetch(`http://127.0.0.1:${port}${probe}`).then((r) => r.status === 200, () => false)) return node;
    if (Date.now() > deadline) {
      node.kill();
      throw new Error(`${name} not ready:\n${output().slice(-3000)}`);
    }
    await sleep(200);
  }
}

/**
 * The settings of `--clawfleet-env KEY=VALUE` (repeatable), for Clawfleet's processes only: to compare a
 * setting's two values. The bench's own measuring hooks go through NODE_OPTIONS and CF_BENCH_*: overridden,
 * its counts would silently be lost, so those are refused.
 */
export function clawfleetEnv(pairs: readonly string[] | undefined): Record<string, string> {
  return Object.fromEntries(
    (pairs ?? []).map((kv) => {
      const at = kv.indexOf("=");
      if (at <= 0) throw new Error(`--clawfleet-env takes KEY=VALUE, not ${kv}`);
      const key = kv.slice(0, at);
      if (key === "NODE_OPTIONS" || key.startsWith("CF_BENCH_")) throw new Error(`--clawfleet-env cannot set ${key}: the bench's measurements use it`);
      return [key, kv.slice(at + 1)];
    }),
  );
}

/**
 * The environment of a measured process: the broker counter preloaded (unless not
 * `counted`: a process without a broker), and the CPU profiler (cpuProfiler.cjs:
 * `--cpu-prof`, which NODE_OPTIONS may not carry) when asked.
 */
export function measuredEnv(profileDir: string | undefined, counted = true): Record<string, string> {
  const opts = [process.env.NODE_OPTIONS ?? ""];
  if (counted) opts.push(`--require ${BROKER_COUNTER}`);
  if (profileDir) opts.push(`--require ${path.join(__dirname, "cpuProfiler.cjs")}`);
  return { NODE_OPTIONS: opts.join(" ").trim(), ...(profileDir ? { CF_BENCH_PROFILE_DIR: profileDir } : {}) };
}

/** Waits for every start (none is left running unseen when one fails); the first node. */
async function startAll(starts: Promise<NodeProcess>[]): Promise<NodeProcess> {
  const settled = await Promise.allSettled(starts);
  const failed = settled.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  return (settled[0] as PromiseFulfilledResult<NodeProcess>).value;
}

export async function startLayout(layout: Layout, o: LayoutOptions): Promise<RunningLayout> {
  const countsDir = fs.mkdtempSync(path.join(os.tmpdir(), `cf-bench-counts-${layout}-`));
  let provider: NodeProcess | undefined;
  const common = (profileSub: string): Record<string, string> => ({
    LOG_LEVEL: "warn",
    CLAWFLEET_SIM_LATENCY_MS: "0",
    ...(provider ? { ANTHROPIC_BASE_URL: `http://127.0.0.1:${provider.port}` } : {}),
    CLAWFLEET_PLANNER_SLOTS: String(o.slots),
    CF_BENCH_COUNTS_DIR: countsDir,
    ...measuredEnv(o.profileDir ? path.join(o.profileDir, layout, profileSub) : undefined),
    ...o.env,
  });
  const scratch = layout === "embedded" ? undefined : await createScratch("benchtput");
  const nodes: NodeProcess[] = [];
  const stop = async () => {
    await stopAll(provider ? [...nodes, provider] : nodes);
    await scratch?.remove();
    fs.rmSync(countsDir, { recursive: true, force: true });
  };
  try {
    if ((o.provider ?? "process") === "process") provider = await startProvider(o.profileDir ? path.join(o.profileDir, layout, "provider") : undefined);
    let base: string;
    if (layout === "embedded") {
      const node = await startNodeProcess({ name: "embedded", env: { ...common("embedded"), CLAWFLEET_DATA_DIR: "memory://" }, timeoutMs: 180_000 });
      nodes.push(node);
      base = `http://127.0.0.1:${node.port}`;
    } else if (layout === "one-process") {
      const s = scratch as Scratch;
      const node = await startNodeProcess({ name: "all", env: { ...s.env("all"), ...common("all") }, timeoutMs: 180_000 });
      nodes.push(node);
      base = `http://127.0.0.1:${node.port}`;
    } else {
      const s = scratch as Scratch;
      // As testkit's startRoleProcesses, with start-up time for a loaded machine running the sources.
      const start = async (name: string, services: string) => {
        const node = await startNodeProcess({ name, env: { ...s.env(services), ...common(name) }, timeoutMs: 300_000 });
        nodes.push(node);
        return node;
      };
      await start("checkpoint", "checkpoint");
      const api = await startAll([
        start("api", "api,intake,metrics"),
        start("rate-gateway", "rate-gateway"),
        start("executor", EXECUTOR_ROLES),
        start("planner-1", "planner"),
        start("planner-2", "planner"),
      ]);
      base = `http://127.0.0.1:${api.port}`;
    }
    return { layout, peer: "clawfleet", base, nodes, scratch, countsDir, ...(provider ? { provider } : {}), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** One process of the bare pipeline (bareNode.ts) with the given roles, waited on until it answers. */
async function startBareNode(name: string, env: Record<string, string>): Promise<NodeProcess> {
  const port = await freePort();
  return startAnswering(name, port, ["--require", "tsx/cjs", path.join(__dirname, "bareNode.ts")], { ...env, PORT: String(port) }, "/health/ready");
}

/**
 * The bare pipeline in `layout`: the same processes, roles and services as Clawfleet's. With `client`, its
 * gateway also sends each model turn to the simulated provider, in its own process (as Clawfleet's, unless
 * `--provider in-process`), through that client: node:http, or the official SDK (bareNode.ts).
 */
export async function startBare(layout: Layout, o: LayoutOptions, plan: BarePlan, client?: ProviderClient): Promise<RunningLayout> {
  const countsDir = fs.mkdtempSync(path.join(os.tmpdir(), `cf-bench-counts-bare-${layout}-`));
  const scratch = layout === "embedded" ? undefined : await createScratch("benchbare");
  const nodes: NodeProcess[] = [];
  let provider: NodeProcess | undefined;
  // Each peer profiles into its own folder (profileTop.ts sums a folder).
  const profileSub = client === undefined ? `bare-${layout}` : `bare-${client === "sdk" ? "sdk" : "model"}-${layout}`;
  const stop = async () => {
    await stopAll(provider ? [...nodes, provider] : nodes);
    await scratch?.remove();
    fs.rmSync(countsDir, { recursive: true, force: true });
  };
  const start = async (name: string, roles: string) => {
    const services: Record<string, string> = scratch ? { TRANSPORTER: scratch.env("").TRANSPORTER ?? "", REDIS_URL: scratch.env("").REDIS_URL ?? "", DATABASE_URL: scratch.db.url, CLAWFLEET_NAMESPACE: scratch.namespace } : {};
    const node = await startBareNode(name, {
      ...services,
      BARE_ROLES: roles,
      BARE_PLAN: JSON.stringify(plan),
      CLAWFLEET_PLANNER_SLOTS: String(o.slots),
      CF_BENCH_COUNTS_DIR: countsDir,
      ...(provider && client ? { BARE_PROVIDER_URL: `http://127.0.0.1:${provider.port}`, BARE_PROVIDER_CLIENT: client } : {}),
      ...measuredEnv(o.profileDir ? path.join(o.profileDir, profileSub, name) : undefined),
    });
    nodes.push(node);
    return node;
  };
  try {
    if (client) provider = await startProvider(o.profileDir ? path.join(o.profileDir, profileSub, "provider") : undefined);
    let first: NodeProcess;
    if (layout === "split") {
      await start("store", "store");
      first = await startAll([start("api", "api,intake"), start("gateway", "gateway"), start("executor", "executor,tools"), start("planner-1", "planner"), start("planner-2", "planner")]);
    } else first = await start("all", "api,intake,store,gateway,executor,tools,planner");
    return { layout, peer: "bare", base: `http://127.0.0.1:${first.port}`, nodes, scratch, countsDir, ...(provider ? { provider } : {}), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
