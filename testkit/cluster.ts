/**
 * Real Clawfleet processes for process-level tests and benchmarks: each node is
 * `bin/clawfleet.js start` in its own OS process with its own environment, killed
 * with real signals.
 *
 * testkit/ holds what test/ and bench/ share; nothing here imports vitest, and
 * nothing in src/ may import it (eslint.config.mjs). Test-only helpers stay in
 * test/helpers/.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { EXAMPLES_ENV, EXECUTOR_ROLES, packageResolutionEnv } from "./examples";

export { EXAMPLES_ENV, EXECUTOR_ROLES, ORDER_ROUTER_SIM_POLICIES, packageResolutionEnv } from "./examples";

export const ROOT = path.resolve(__dirname, "..");
const BIN = path.join(ROOT, "bin", "clawfleet.js");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface NodeProcess {
  name: string;
  port: number;
  proc: ChildProcess;
  /** Everything the process printed, for assertions and post-mortems. */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

export interface StartOptions {
  name: string;
  env: Record<string, string>;
  /** Wait for /health/ready (default) or only /health/live. */
  waitFor?: "ready" | "live" | "none";
  timeoutMs?: number;
  /** How often the health endpoint is asked. @default 200 */
  pollMs?: number;
}

const BASE_ENV_KEYS = ["PATH", "HOME", "LANG", "TMPDIR", "NODE_OPTIONS"];

export interface Captured {
  proc: ChildProcess;
  /** Everything the process printed (the newest part, past `maxChars`). */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * A Node process run from the project root with only the basic environment
 * (PATH, HOME, …) plus `env`, its stdout and stderr kept for assertions and
 * post-mortems, even after it is killed.
 */
export function spawnCaptured(args: readonly string[], env: Record<string, string>, maxChars = 4_000_000): Captured {
  const full: Record<string, string> = {};
  for (const k of BASE_ENV_KEYS) if (process.env[k] !== undefined) full[k] = process.env[k];
  Object.assign(full, env);
  const proc = spawn(process.execPath, [...args], { env: full, cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const append = (b: Buffer) => {
    out += b.toString();
    if (out.length > maxChars) out = out.slice(-maxChars / 2);
  };
  proc.stdout?.on("data", append);
  proc.stderr?.on("data", append);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { proc, output: () => out, exited };
}

export async function startNodeProcess(opts: StartOptions): Promise<NodeProcess> {
  const port = opts.env.PORT !== undefined ? Number(opts.env.PORT) : await freePort();
  const { proc, output, exited } = spawnCaptured([BIN, "start"], {
    LOG_LEVEL: "info",
    // Authentication has its own suites; a test that wants it on says so in `env`.
    CLAWFLEET_AUTH: "off",
    CLAWFLEET_LOG_FORMAT: "json",
    ...EXAMPLES_ENV,
    ...packageResolutionEnv(),
    ...opts.env,
    PORT: String(port),
  });
  const node: NodeProcess = {
    name: opts.name,
    port,
    proc,
    output,
    exited,
    kill: (signal = "SIGKILL") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
  };
  if ((opts.waitFor ?? "ready") !== "none") {
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    const url = `http://127.0.0.1:${port}/health/${opts.waitFor ?? "ready"}`;
    let exitedEarly = false;
    void exited.then(() => (exitedEarly = true));
    for (;;) {
      if (exitedEarly) throw new Error(`${opts.name} exited during start-up:\n${output().slice(-4000)}`);
      try {
        const r = await fetch(url);
        if (r.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        node.kill();
        throw new Error(`${opts.name} not ${opts.waitFor ?? "ready"} after ${opts.timeoutMs ?? 60_000} ms:\n${output().slice(-4000)}`);
      }
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 200));
    }
  }
  return node;
}

export async function stopAll(nodes: readonly NodeProcess[], signal: NodeJS.Signals = "SIGTERM", timeoutMs = 30_000): Promise<void> {
  await Promise.all(
    nodes.map(async (n) => {
      n.kill(signal);
      const t = setTimeout(() => n.kill("SIGKILL"), timeoutMs);
      await n.exited;
      clearTimeout(t);
    }),
  );
}

/**
 * The distributed layout, one role per OS process: checkpoint first (it migrates the
 * database, so the others find the schema), then rate-gateway, executor, two planners
 * and api+intake+metrics at once. They go onto `nodes` (in that order) as they come
 * up, checkpoint before the rest, for the caller to stop. Returns the api's base URL.
 */
export async function startRoleProcesses(nodes: NodeProcess[], env: (services: string) => Record<string, string>): Promise<string> {
  nodes.push(await startNodeProcess({ name: "checkpoint", env: env("checkpoint") }));
  const rest = await Promise.all([
    startNodeProcess({ name: "rate-gateway", env: env("rate-gateway") }),
    startNodeProcess({ name: "executor", env: env(EXECUTOR_ROLES) }),
    startNodeProcess({ name: "planner-1", env: env("planner") }),
    startNodeProcess({ name: "planner-2", env: env("planner") }),
    startNodeProcess({ name: "api", env: env("api,intake,metrics") }),
  ]);
  nodes.push(...rest);
  return `http://127.0.0.1:${rest[4]?.port}`;
}

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export interface Submitted {
  id: string;
  status: number;
}

export async function submitTask(base: string, body: unknown, headers: Record<string, string> = {}): Promise<Submitted & { location: string | null }> {
  const r = await fetch(`${base}/v1/tasks`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const json = (await r.json()) as { id: string };
  return { id: json.id, status: r.status, location: r.headers.get("location") };
}

/** A task as the drills read it from Postgres (crash.ts): what every view of a task has. */
export interface TaskView {
  id: string;
  status: string;
  result: unknown;
  error: unknown;
  attempts: number;
  steps: number;
  usage: { input_tokens: number; output_tokens: number };
}

/** A task as GET /v1/tasks/{id} answers. */
export interface TaskJson extends TaskView {
  usage: TaskView["usage"] & { cost_usd: number };
  prompt_version: string;
}

export async function getJson<T>(url: string, headers: Record<string, string> = {}): Promise<T> {
  const r = await fetch(url, { headers });
  return (await r.json()) as T;
}

/** Polls until every task is terminal or the deadline passes; returns the final views. */
export async function waitForTasks(base: string, ids: readonly string[], timeoutMs: number, headers: Record<string, string> = {}): Promise<Map<string, TaskJson>> {
  const deadline = Date.now() + timeoutMs;
  const done = new Map<string, TaskJson>();
  while (done.size < ids.length && Date.now() < deadline) {
    for (const id of ids) {
      if (done.has(id)) continue;
      const t = await getJson<TaskJson>(`${base}/v1/tasks/${id}`, headers).catch(() => undefined);
      if (t && ["succeeded", "failed", "cancelled"].includes(t.status)) done.set(id, t);
    }
    if (done.size < ids.length) await new Promise((r) => setTimeout(r, 250));
  }
  return done;
}
