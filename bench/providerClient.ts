/**
 * What one model call costs the process that makes it, by client, against the simulated provider in a
 * process of its own at zero latency (bench/throughput/layouts.ts's provider, the order-router's policies):
 *
 *   node:http      a kept-alive node:http POST and a JSON.parse of the answer, no SDK (the bare+model peer's client);
 *   SDK+httpFetch  the official SDK's `messages.create` over the `fetch` Clawfleet gives it (src/llm/httpFetch.ts),
 *                  as Clawfleet's gateway makes every call, and as the bare+SDK peer does;
 *   SDK+fetch      the same over Node's global fetch (undici), the SDK's default.
 *
 * Every client sends the same request: the order-router's first turn (its prompt, its four tools, the order;
 * bench/throughput/providerCall.ts).
 * `--concurrency` calls at a time, `--calls` of them after `--warm` not counted, in `--rounds` rounds of the
 * three clients one after the other. Printed per client and round: the caller's CPU ms per call
 * (process.cpuUsage), the provider's (/proc), and the calls per second.
 *
 * This is the floor under any pipeline's model turn here: the throughput bench's bare pipeline makes none,
 * and a model turn through the SDK costs its caller more CPU than a whole step of that pipeline.
 *
 *   npx tsx bench/providerClient.ts [--calls 4000] [--warm 500] [--concurrency 8] [--rounds 2]
 */
import { parseArgs } from "node:util";
import { stopAll } from "../testkit/cluster";
import { startProvider } from "./throughput/layouts";
import { providerCall } from "./throughput/providerCall";
import { cpuMs, loadLine } from "./throughput/meters";

const { values: args } = parseArgs({
  options: {
    calls: { type: "string", default: "4000" },
    warm: { type: "string", default: "500" },
    concurrency: { type: "string", default: "8" },
    rounds: { type: "string", default: "2" },
  },
});
const positive = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} must be a positive integer, got ${v}`);
  return n;
};
const CALLS = positive("calls", args.calls);
const WARM = positive("warm", args.warm);
const CONCURRENCY = positive("concurrency", args.concurrency);
const ROUNDS = positive("rounds", args.rounds);

type Call = () => Promise<string>;

/** `n` calls, `CONCURRENCY` at a time; each must answer with a message id. */
async function run(call: Call, n: number): Promise<void> {
  let started = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (started++ < n) if (!(await call()).startsWith("msg_")) throw new Error("an answer without a message id");
    }),
  );
}

async function main(): Promise<void> {
  const provider = await startProvider(undefined);
  const providerPid = provider.proc.pid ?? 0;
  try {
    const base = `http://127.0.0.1:${provider.port}`;
    const clients: ReadonlyArray<[string, Call]> = [
      ["node:http", providerCall(base, "http")],
      ["SDK+httpFetch", providerCall(base, "sdk")],
      ["SDK+fetch", providerCall(base, "sdk-global-fetch")],
    ];
    process.stdout.write(`provider client bench: ${CALLS} calls per client and round after ${WARM}, ${CONCURRENCY} at a time, the simulated provider in its own process at zero latency; ${loadLine()}\n`);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const [name, call] of clients) {
        await run(call, WARM);
        const own = process.cpuUsage();
        const theirs = cpuMs(providerPid);
        const t0 = performance.now();
        await run(call, CALLS);
        const ms = performance.now() - t0;
        const used = process.cpuUsage(own);
        const caller = (used.user + used.system) / 1000 / CALLS;
        const prov = (cpuMs(providerPid) - theirs) / CALLS;
        process.stdout.write(
          `  round ${round}  ${name.padEnd(14)} caller ${caller.toFixed(3)} CPU ms per call, provider ${prov.toFixed(3)}; ${((CALLS / ms) * 1000).toFixed(0)} calls/s\n`,
        );
      }
    }
    process.stdout.write(`${loadLine()}\n`);
  } finally {
    await stopAll([provider]);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
