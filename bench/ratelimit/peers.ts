/** Contenders "peer A" (SDK retries) and "peer B" (BullMQ limiter): worker processes sharing the burst. */
import { spawn } from "node:child_process";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { Arrival, ContenderRun } from "./clawfleet";
import type { PeerWorkerArgs } from "./peerWorker";
import { ROOT } from "./procs";

export interface PeerOptions {
  mode: "sdk" | "bullmq";
  simUrl: string;
  workers: number;
  slots: number;
  maxRetries: number;
  redisUrl: string;
  limiter: { max: number; duration: number };
  bullConcurrency: number;
}

function worker(args: PeerWorkerArgs): Promise<Array<{ at: number; done: number; ok: boolean; error?: string }>> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ["--require", "tsx/cjs", path.join(__dirname, "peerWorker.ts"), JSON.stringify(args)], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    proc.stdout.on("data", (b: Buffer) => (out += b.toString()));
    proc.stderr.on("data", (b: Buffer) => (err += b.toString()));
    proc.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`peer worker exited ${code}: ${err.slice(-2000)}`));
      resolve((JSON.parse(out.trim().split("\n").at(-1) ?? "{}") as { results: Array<{ at: number; done: number; ok: boolean }> }).results);
    });
  });
}

export async function runPeer(o: PeerOptions, arrivals: readonly Arrival[]): Promise<ContenderRun & { errors: string[] }> {
  const queueName = `peerb${randomUUID().slice(0, 8)}`;
  // Time for the workers to start (tsx, BullMQ connections) before the burst begins.
  const startedAt = Date.now() + 4000;
  const shares = Array.from({ length: o.workers }, (_, w) =>
    arrivals.flatMap((a, i) => (i % o.workers === w ? [{ id: randomUUID(), order: a.order, at: a.at }] : [])),
  );
  const all = await Promise.all(
    shares.map((tasks) =>
      worker({ mode: o.mode, simUrl: o.simUrl, slots: o.slots, maxRetries: o.maxRetries, redisUrl: o.redisUrl, queueName, limiter: o.limiter, bullConcurrency: o.bullConcurrency, startAt: startedAt, tasks }),
    ),
  );
  if (o.mode === "bullmq") {
    const redis = new Redis(o.redisUrl);
    const keys = await redis.keys(`bull:${queueName}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
  const results = all.flat();
  return {
    tasks: results.map((r) => ({ ok: r.ok, latencyMs: r.done - r.at, doneAt: r.done })),
    wallMs: Math.max(...results.map((r) => r.done)) - startedAt,
    startedAt,
    errors: results.flatMap((r) => (r.error ? [r.error] : [])),
  };
}
