/**
 * `clawfleet sim`: runs the simulated Anthropic model until SIGINT or SIGTERM,
 * for the embedded demo and for load-testing a deployment (point
 * ANTHROPIC_BASE_URL at it). Agents with a scripted policy (`--policies`) get
 * it; every other agent gets the generic one.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { ConfigError } from "../errors";
import { loadSimPolicies } from "./plugins";
import { startSimServer } from "./server";
import type { SimOptions } from "./options";

export const SIM_USAGE = `Usage: clawfleet sim [options]

  --port N               port to listen on; 0 picks a free one (default 0)
  --host H               interface to bind (default 127.0.0.1)
  --latency-ms N         fixed delay before each answer (default 0)
  --latency-jitter-ms N  extra delay in [0, N), deterministic by --seed (default 0)
  --failure-rate F       fraction in [0, 1] answered 529/500 (default 0)
  --seed N               seed for jitter and failures (default 1)
  --rpm N                requests per minute, per model (default unlimited)
  --itpm N               input tokens per minute, per model (default unlimited)
  --otpm N               output tokens per minute, per model (default unlimited)
  --limit-window-ms N    length of the rate-limit "minute" (default 60000)
  --api-key K            require this x-api-key (default: any)
  --policies FILE        a module exporting scripted policies (\`routes\`); repeatable, or
                         a path list; default CLAWFLEET_SIM_POLICIES. Agents without a
                         script get the generic policy: each offered tool once, then text
  -h, --help             show this help`;

export interface SimCommandIo {
  /** Where the start-up line goes. @default process.stdout */
  out?: (line: string) => void;
  /** Stops the server when aborted, besides SIGINT and SIGTERM. */
  signal?: AbortSignal;
  /** Policy modules used when no `--policies` is given (the CLI passes CLAWFLEET_SIM_POLICIES). @default [] */
  policies?: readonly string[];
}

/** What the command line asks for: the server's options, and the policy modules to load into it. */
export type SimArgs = Omit<SimOptions, "policies"> & { policyFiles?: string[] };

function number(flag: string, raw: string | undefined, { integer, min, max }: { integer: boolean; min: number; max?: number }): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  const range = max === undefined ? `≥ ${min}` : `between ${min} and ${max}`;
  if (raw.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || (max !== undefined && n > max))
    throw new ConfigError(`--${flag}`, `expected ${integer ? "an integer" : "a number"} ${range}, got "${raw}"`);
  return n;
}

export function parseSimArgs(argv: string[]): SimArgs | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: "string" },
        host: { type: "string" },
        "latency-ms": { type: "string" },
        "latency-jitter-ms": { type: "string" },
        "failure-rate": { type: "string" },
        seed: { type: "string" },
        rpm: { type: "string" },
        itpm: { type: "string" },
        otpm: { type: "string" },
        "limit-window-ms": { type: "string" },
        "api-key": { type: "string" },
        policies: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new ConfigError("clawfleet sim", `${err instanceof Error ? err.message : String(err)}\n\n${SIM_USAGE}`);
  }
  if (values.help) return "help";
  const int = (flag: string, raw: string | undefined, min: number, max?: number) => number(flag, raw, { integer: true, min, ...(max === undefined ? {} : { max }) });
  const policyFiles = (values.policies ?? []).flatMap((v) => v.split(path.delimiter)).map((f) => f.trim()).filter((f) => f !== "");
  const opts: SimArgs = {
    port: int("port", values.port, 0, 65_535),
    host: values.host,
    latencyMs: int("latency-ms", values["latency-ms"], 0),
    latencyJitterMs: int("latency-jitter-ms", values["latency-jitter-ms"], 0),
    failureRate: number("failure-rate", values["failure-rate"], { integer: false, min: 0, max: 1 }),
    seed: int("seed", values.seed, Number.MIN_SAFE_INTEGER),
    requestsPerMinute: int("rpm", values.rpm, 1),
    inputTokensPerMinute: int("itpm", values.itpm, 1),
    outputTokensPerMinute: int("otpm", values.otpm, 1),
    limitWindowMs: int("limit-window-ms", values["limit-window-ms"], 1),
    apiKey: values["api-key"],
    policyFiles: policyFiles.length > 0 ? policyFiles : undefined,
  };
  // Absent flags take the documented defaults rather than an explicit undefined.
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
}

export async function runSimCommand(argv: string[], io: SimCommandIo = {}): Promise<void> {
  const out = io.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const args = parseSimArgs(argv);
  if (args === "help") {
    out(SIM_USAGE);
    return;
  }
  const { policyFiles, ...opts } = args;
  const policies = policyFiles
    ? await loadSimPolicies(policyFiles, "--policies")
    : await loadSimPolicies(io.policies ?? [], "CLAWFLEET_SIM_POLICIES");
  const sim = await startSimServer({ ...opts, policies }).catch((err: unknown) => {
    if ((err as { code?: unknown }).code === "EADDRINUSE") throw new ConfigError("--port", `port ${opts.port ?? 0} is already in use`);
    throw err;
  });
  out(`simulated Anthropic model listening on ${sim.url}`);
  const scripted = policies.map((p) => p.name);
  out(`policies: ${scripted.length > 0 ? `${scripted.join(", ")} (scripted), ` : ""}generic for every other agent`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      io.signal?.removeEventListener("abort", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    if (io.signal?.aborted) stop();
    else io.signal?.addEventListener("abort", stop);
  });
  await sim.close();
}
