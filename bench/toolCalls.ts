/**
 * What the executor adds to a call of a user's tool. Three brokers over the real
 * NATS (a namespace of their own): a caller (the planner's seat), the real
 * `executor` service (its Resources on a fresh Postgres database), and a user's
 * tool service with the ClawfleetTools mixin. Sequential calls, one at a time, of:
 *
 *   direct:       broker.call("bench.echo")       caller → tools → caller
 *   executor:     executor.run of the same tool    caller → executor → tools → executor → caller,
 *                                                  with the allow-list, the registry look-up and ajv
 *   side effect:  executor.run of a sideEffect tool  as above, plus the ledger's two writes (started, outcome)
 *
 *   npx tsx bench/toolCalls.ts [--calls 2000] [--warmup 200] [--json out.json]
 *
 * Needs PostgreSQL, Redis and NATS on 127.0.0.1 (as the tests). The brokers share
 * this process (one call in flight at a time, so they do not compete); every hop
 * still goes through the NATS server. The executor logs at warn, so its per-call
 * `tool.executed` line is not written.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { ServiceBroker, type Context } from "moleculer";
import { ClawfleetTools } from "../mixins";
import { loadConfig } from "../src/config";
import type { ToolCall, ToolResult } from "../src/contracts";
import { ClawfleetRegenerator } from "../src/errors";
import { Resources } from "../src/node/resources";
import { Metrics } from "../src/telemetry/metrics";
import { executorService } from "../services/executor.service";
import { createScratch, NATS_TEST_URL } from "../testkit/scratch";

const { values: args } = parseArgs({
  options: { calls: { type: "string", default: "2000" }, warmup: { type: "string", default: "200" }, json: { type: "string" } },
});
const CALLS = Number(args.calls);
const WARMUP = Number(args.warmup);

const AGENT = `---
name: bench
tools: [echo, echo_once]
tiers:
  t:
    model: claude-haiku-5-5
    max_tokens: 100
default_tier: t
---
Bench.
`;

const INPUT = { order_id: "ORD-1042", quantity: 3 };
const schema = { type: "object", properties: { order_id: { type: "string", pattern: "^ORD-\\d+$" }, quantity: { type: "integer", minimum: 1 } }, required: ["order_id", "quantity"] };

interface Row {
  path: string;
  p50: number;
  p99: number;
  mean: number;
}

async function timed(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

/** Nearest rank, of sorted numbers. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

function row(name: string, ms: number[]): Row {
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { path: name, p50: r(percentile(ms, 50)), p99: r(percentile(ms, 99)), mean: r(ms.reduce((a, b) => a + b, 0) / ms.length) };
}

async function main(): Promise<void> {
  const scratch = await createScratch("benchtools");
  const prompts = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-bench-tools-"));
  fs.writeFileSync(path.join(prompts, "bench.md"), AGENT);
  const env = { ...scratch.env("executor"), CLAWFLEET_PROMPTS_DIR: prompts, LOG_LEVEL: "warn", CLAWFLEET_NODE_ID: "bench-executor" };
  const config = loadConfig(env);
  const resources = new Resources(config);
  const opts = (nodeID: string) => ({ namespace: scratch.namespace, nodeID, transporter: NATS_TEST_URL, logger: false, errorRegenerator: new ClawfleetRegenerator(), requestTimeout: 0 });

  const executorNode = new ServiceBroker(opts("bench-executor"));
  executorNode.createService(executorService(resources, new Metrics({ node: "bench-executor" }, { enabled: true })));
  const toolsNode = new ServiceBroker(opts("bench-tools"));
  toolsNode.createService({
    name: "bench",
    mixins: [ClawfleetTools],
    actions: {
      echo: { tool: { description: "Echoes its input.", input: schema }, handler: (ctx: Context) => ctx.params },
      echoOnce: { tool: { name: "echo_once", description: "Echoes, as a side effect.", sideEffect: true, input: schema }, handler: (ctx: Context) => ctx.params },
    },
  });
  const caller = new ServiceBroker(opts("bench-caller"));
  try {
    await Promise.all([executorNode.start(), toolsNode.start(), caller.start()]);
    await caller.waitForServices(["executor", "bench"], 30_000);
    for (let i = 0; ; i++) {
      const specs = await caller.call<unknown[], object>("executor.specs", { agent: "bench", names: ["echo", "echo_once"] });
      if (specs.length === 2) break;
      if (i > 100) throw new Error("the executor never found the bench tools");
      await new Promise((r) => setTimeout(r, 100));
    }

    const run = (tool: string, i: number, round: string) => {
      const taskId = `bench-${round}`;
      const call: ToolCall = { taskId, agent: "bench", step: i + 1, tool, toolUseId: `tu_${i}`, input: INPUT, idempotencyKey: `${taskId}:${i + 1}` };
      return caller.call<ToolResult, ToolCall>("executor.run", call).then((r) => {
        if (!r.ok) throw new Error(`executor.run ${tool}: ${JSON.stringify(r.output)}`);
      });
    };
    const direct = (i: number) => caller.call("bench.echo", INPUT, { meta: { idempotencyKey: `bench:${i}`, taskId: "bench" } });

    // Warm up every path (JIT, connections, the executor's index and compiled schema).
    await timed(WARMUP, direct);
    await timed(WARMUP, (i) => run("echo", i, "warm"));
    await timed(WARMUP, (i) => run("echo_once", i, "warm"));

    // Interleaved rounds, so a passing hiccup of the machine is shared by every path.
    const samples = { direct: [] as number[], executor: [] as number[], sideEffect: [] as number[] };
    const ROUNDS = 4;
    const per = Math.ceil(CALLS / ROUNDS);
    for (let r = 0; r < ROUNDS; r++) {
      samples.direct.push(...(await timed(per, direct)));
      samples.executor.push(...(await timed(per, (i) => run("echo", i, `r${r}`))));
      samples.sideEffect.push(...(await timed(per, (i) => run("echo_once", i, `r${r}`))));
    }
    const rows = [
      row("direct broker.call", samples.direct.sort((a, b) => a - b)),
      row("executor.run", samples.executor.sort((a, b) => a - b)),
      row("executor.run, sideEffect", samples.sideEffect.sort((a, b) => a - b)),
    ];
    const base = rows[0] as Row;
    process.stdout.write(`tool call latency, ${per * ROUNDS} sequential calls per path (ms), over NATS, ${os.cpus().length} cores\n`);
    process.stdout.write(`${"path".padEnd(28)}${"p50".padStart(9)}${"p99".padStart(9)}${"mean".padStart(9)}${"+p50".padStart(9)}${"+p99".padStart(9)}\n`);
    for (const r of rows) {
      const fmt = (x: number) => x.toFixed(3).padStart(9);
      process.stdout.write(`${r.path.padEnd(28)}${fmt(r.p50)}${fmt(r.p99)}${fmt(r.mean)}${fmt(r.p50 - base.p50)}${fmt(r.p99 - base.p99)}\n`);
    }
    if (args.json) fs.writeFileSync(args.json, JSON.stringify({ calls: per * ROUNDS, rows }, null, 2));
  } finally {
    await Promise.all([caller.stop(), toolsNode.stop(), executorNode.stop()]);
    await resources.close();
    await scratch.remove();
    fs.rmSync(prompts, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
