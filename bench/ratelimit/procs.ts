/**
 * Processes for the rate-limit benchmark: Clawfleet nodes and simulated models,
 * each in its own OS process, run from the TypeScript sources (so the figures
 * are for this tree, whatever `dist/` holds).
 */
import type { ChildProcess } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { EXAMPLES_ENV, freePort, ORDER_ROUTER_SIM_POLICIES, ROOT, spawnCaptured } from "../../testkit/cluster";

export { freePort, ROOT };

export interface Proc {
  name: string;
  port: number;
  proc: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function launch(name: string, port: number, args: string[], env: Record<string, string>): Proc {
  const { proc, output, exited: done } = spawnCaptured(["--require", "tsx/cjs", ...args], env, 2_000_000);
  const exited = done.then(({ code }) => code);
  return {
    name,
    port,
    proc,
    output,
    exited,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const t = setTimeout(() => proc.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(t);
    },
  };
}

async function waitHttp(p: Proc, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void p.exited.then(() => (gone = true));
  for (;;) {
    if (gone) throw new Error(`${p.name} exited during start-up:\n${p.output().slice(-3000)}`);
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${p.name} not up after ${timeoutMs} ms:\n${p.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/**
 * One Clawfleet node (`clawfleet start`) with the given roles, waited on until
 * ready. `started` gets the process at once, so a caller can stop it even when
 * another node's start-up fails first.
 */
export async function startNode(name: string, env: Record<string, string>, started?: (p: Proc) => void): Promise<Proc> {
  const port = await freePort();
  const p = launch(name, port, ["-e", "require('./app/cli.ts').run(['start'])"], {
    LOG_LEVEL: "warn",
    CLAWFLEET_LOG_FORMAT: "json",
    ...EXAMPLES_ENV,
    TSX_TSCONFIG_PATH: path.join(ROOT, "examples", "tsconfig.json"),
    ...env,
    PORT: String(port),
  });
  started?.(p);
  try {
    await waitHttp(p, `http://127.0.0.1:${port}/health/ready`, 90_000);
  } catch (err) {
    await p.stop("SIGKILL");
    throw err;
  }
  return p;
}

export interface SimOpts {
  rpm: number;
  itpm: number;
  otpm: number;
  windowMs: number;
  latencyMs: number;
  latencyJitterMs: number;
}

/**
 * Runs `pid` ahead of the machine's other work where the OS lets us (root). The
 * measuring instruments get it (the sims, whose request logs are the
 * measurement, stand for the provider's own machines), never a contender.
 */
export function prioritize(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    os.setPriority(pid, -10);
  } catch {
    // Not permitted: measure at normal priority.
  }
}

/** A `clawfleet sim` of its own: one per contender, same limits. */
export async function startSim(name: string, o: SimOpts): Promise<Proc & { url: string }> {
  const port = await freePort();
  const args = [
    "-e",
    `require('./app/cli.ts').run(${JSON.stringify([
      "sim",
      "--port",
      String(port),
      "--rpm",
      String(o.rpm),
      "--itpm",
      String(o.itpm),
      "--otpm",
      String(o.otpm),
      "--limit-window-ms",
      String(o.windowMs),
      "--latency-ms",
      String(o.latencyMs),
      "--latency-jitter-ms",
      String(o.latencyJitterMs),
      "--policies",
      ORDER_ROUTER_SIM_POLICIES,
    ])})`,
  ];
  // Run from the sources (tsx): the examples' package imports must resolve to them too.
  const p = launch(name, port, args, { TSX_TSCONFIG_PATH: path.join(ROOT, "examples", "tsconfig.json") });
  prioritize(p.proc.pid);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(p, `${url}/_sim/stats`, 60_000);
  return { ...p, url };
}

export interface SimLogEntry {
  at: number;
  model: string;
  admitted?: boolean;
  user_id: string | null;
  turn: number;
}

export async function simLog(url: string): Promise<SimLogEntry[]> {
  return (await (await fetch(`${url}/_sim/requests`)).json()) as SimLogEntry[];
}
