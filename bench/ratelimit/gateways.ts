/**
 * Two rate-gateway processes sharing Redis, neither configured with limits, one
 * of them killed (SIGKILL, its reservations in flight) and replaced by a fresh
 * process mid-run; the limits come only from the simulated provider's
 * `anthropic-ratelimit-*-limit` headers. A recording proxy in front of the sim
 * logs every request's arrival, status and token usage; the figure is the most
 * admitted in any sliding window of the limit's length, divided by the limit,
 * for requests, input tokens and output tokens.
 *
 *   npx tsx bench/ratelimit/gateways.ts [--window-ms 20000] [--duration-ms 90000] [--restart-at-ms 45000]
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { spawnCaptured } from "../../testkit/cluster";
import { REDIS_URL } from "./clawfleet";
import { ROOT, startSim } from "./procs";

const { values } = parseArgs({
  options: {
    "window-ms": { type: "string", default: "20000" },
    rpm: { type: "string", default: "300" },
    itpm: { type: "string", default: "120000" },
    otpm: { type: "string", default: "60000" },
    "duration-ms": { type: "string", default: "90000" },
    "restart-at-ms": { type: "string", default: "45000" },
    concurrency: { type: "string", default: "16" },
  },
});
const windowMs = Number(values["window-ms"]);
const limits = { rpm: Number(values.rpm), itpm: Number(values.itpm), otpm: Number(values.otpm) };
const durationMs = Number(values["duration-ms"]);
const restartAtMs = Number(values["restart-at-ms"]);
const concurrency = Number(values.concurrency);
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

interface Seen {
  at: number;
  status: number;
  input: number;
  output: number;
}

/** Forwards to the sim and records what the provider admitted (arrival time, status, usage). */
async function recordingProxy(target: string): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const at = Date.now();
    const out = http.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
      const chunks: Buffer[] = [];
      up.on("data", (c: Buffer) => chunks.push(c));
      up.on("end", () => {
        const body = Buffer.concat(chunks);
        if (req.url?.startsWith("/v1/messages") && !req.url.includes("count_tokens")) {
          let usage = { input_tokens: 0, output_tokens: 0 };
          if (up.statusCode === 200) usage = (JSON.parse(body.toString()) as { usage: typeof usage }).usage;
          seen.push({ at, status: up.statusCode ?? 0, input: usage.input_tokens, output: usage.output_tokens });
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        res.end(body);
      });
    });
    out.on("error", () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function worker(name: string, providerUrl: string, prefix: string, seed: number) {
  const args = { name, providerUrl, redisUrl: REDIS_URL, prefix, windowMs, concurrency, seed };
  const script = path.join(ROOT, "bench", "ratelimit", "gatewayWorker.ts");
  const w = spawnCaptured(["--require", "tsx/cjs", script, JSON.stringify(args)], { LOG_LEVEL: "warn" });
  log(`${name}: pid ${w.proc.pid}`);
  return w;
}

/** Most of `value` summed over the records arriving in any window [t, t + len). */
function peak(xs: readonly Seen[], value: (s: Seen) => number, len: number): number {
  let best = 0;
  let sum = 0;
  let lo = 0;
  for (const x of xs) {
    sum += value(x);
    while ((xs[lo] as Seen).at <= x.at - len) sum -= value(xs[lo++] as Seen);
    best = Math.max(best, sum);
  }
  return best;
}

async function main(): Promise<void> {
  const sim = await startSim("sim-gateways", { ...limits, windowMs, latencyMs: 50, latencyJitterMs: 30 });
  const proxy = await recordingProxy(sim.url);
  const prefix = `cfbench-gw-${process.pid}-${Date.now()}`;
  const redis = new Redis(REDIS_URL);
  try {
    const t0 = Date.now();
    const a = worker("gateway-A", proxy.url, prefix, 1);
    let b = worker("gateway-B", proxy.url, prefix, 2);
    await new Promise((r) => setTimeout(r, restartAtMs));
    b.proc.kill("SIGKILL");
    await b.exited;
    const killedAt = Date.now() - t0;
    log(`gateway-B killed at ${(killedAt / 1000).toFixed(1)} s; starting a fresh process`);
    b = worker("gateway-B2", proxy.url, prefix, 3);
    await new Promise((r) => setTimeout(r, Math.max(0, durationMs - (Date.now() - t0))));
    for (const w of [a, b]) w.proc.kill("SIGTERM");
    const exits = await Promise.all([a.exited, b.exited]);
    const learned = await redis.get(`${prefix}:ratelimit-learned:claude-sonnet-5-5`);
    const admitted = proxy.seen.filter((s) => s.status === 200).sort((x, y) => x.at - y.at);
    const refused = proxy.seen.filter((s) => s.status === 429).length;
    const first = admitted[0]?.at ?? t0;
    const span = Math.max(1, (admitted.at(-1)?.at ?? first) - first);
    const row = (name: string, limit: number, value: (s: Seen) => number) => {
      const total = admitted.reduce((acc, s) => acc + value(s), 0);
      const p = peak(admitted, value, windowMs);
      return `| ${name} | ${limit} | ${p} | ${(p / limit).toFixed(3)}x | ${((total / span) * windowMs / limit * 100).toFixed(1)}% |`;
    };
    const lines = [
      `Two gateways (${concurrency} callers each) sharing Redis, no configured limits; gateway-B SIGKILLed at ${(killedAt / 1000).toFixed(1)} s and replaced by a fresh process; ` +
        `provider limits ${limits.rpm} requests / ${limits.itpm} input / ${limits.otpm} output tokens per ${windowMs / 1000} s window, learned from its headers; run ${(durationMs / 1000).toFixed(0)} s.`,
      "",
      "| limit | per window | most admitted in any window | max / limit | mean rate / limit |",
      "|---|---|---|---|---|",
      row("requests", limits.rpm, () => 1),
      row("input tokens", limits.itpm, (s) => s.input),
      row("output tokens", limits.otpm, (s) => s.output),
      "",
      `admitted ${admitted.length}, provider 429s ${refused}; learned limits in Redis at the end: ${learned ?? "none"}; ` +
        `requests in any 1/60 window: max ${peak(admitted, () => 1, windowMs / 60)} (limit/60 = ${(limits.rpm / 60).toFixed(1)}); worker exits ${JSON.stringify(exits.map((e) => e.code))}`,
      `workers: ${[a, b].map((w) => w.output().trim().split("\n").at(-1)).join(" ")}`,
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    await proxy.close();
    await sim.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
