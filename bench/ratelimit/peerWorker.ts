/**
 * One worker process of a peer: runs its share of the burst's tasks, `slots` at
 * a time, as they arrive.
 *
 * - mode "sdk" (peer A): each call goes straight to the provider with the
 *   official SDK, which retries 429s itself (`maxRetries`, honouring retry-after).
 * - mode "bullmq" (peer B): each call is a BullMQ job on one queue whose workers
 *   (one per process) have BullMQ's rate limiter `limiter: {max, duration}`; the
 *   task waits for its call's job to finish. The SDK inside retries as in "sdk".
 *
 * Prints one JSON line: every task's arrival, finish and outcome (epoch ms).
 */
import Anthropic from "@anthropic-ai/sdk";
import { Queue, QueueEvents, Worker } from "bullmq";
import { orderRouterPeer } from "./peerLoop";

export interface PeerWorkerArgs {
  mode: "sdk" | "bullmq";
  simUrl: string;
  slots: number;
  maxRetries: number;
  redisUrl: string;
  queueName: string;
  limiter: { max: number; duration: number };
  bullConcurrency: number;
  startAt: number;
  tasks: Array<{ id: string; order: string; at: number }>;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? "{}") as PeerWorkerArgs;
  const client = new Anthropic({ apiKey: "peer", baseURL: args.simUrl, maxRetries: args.maxRetries, timeout: 600_000 });
  let create = (p: Anthropic.MessageCreateParamsNonStreaming): Promise<Anthropic.Message> => client.messages.create(p);
  const closers: Array<() => Promise<void>> = [];

  if (args.mode === "bullmq") {
    const connection = { url: args.redisUrl };
    const queue = new Queue(args.queueName, { connection });
    const events = new QueueEvents(args.queueName, { connection });
    await events.waitUntilReady();
    const worker = new Worker(args.queueName, async (job) => client.messages.create(job.data as Anthropic.MessageCreateParamsNonStreaming), {
      connection,
      concurrency: args.bullConcurrency,
      limiter: args.limiter,
    });
    closers.push(() => worker.close(), () => events.close(), () => queue.close());
    create = async (p) => {
      // Kept until the run ends (the benchmark deletes the queue's keys): removal races waitUntilFinished.
      const job = await queue.add("messages.create", p);
      return (await job.waitUntilFinished(events)) as Anthropic.Message;
    };
  }

  const runTask = orderRouterPeer(create);
  const results: Array<{ at: number; done: number; ok: boolean; error?: string }> = [];
  const ready: Array<{ id: string; order: string; at: number }> = [];
  let wake: (() => void) | undefined;
  for (const t of args.tasks)
    setTimeout(() => {
      ready.push(t);
      wake?.();
    }, Math.max(0, args.startAt + t.at - Date.now()));

  let remaining = args.tasks.length;
  await Promise.all(
    Array.from({ length: args.slots }, async () => {
      for (;;) {
        if (remaining === 0) return;
        const t = ready.shift();
        if (!t) {
          await new Promise<void>((r) => {
            const prev = wake;
            wake = () => {
              wake = prev;
              r();
              prev?.();
            };
            setTimeout(r, 50);
          });
          continue;
        }
        remaining--;
        const at = args.startAt + t.at;
        try {
          await runTask(t.id, t.order);
          results.push({ at, done: Date.now(), ok: true });
        } catch (err) {
          results.push({ at, done: Date.now(), ok: false, error: err instanceof Error ? err.message.slice(0, 200) : String(err) });
        }
      }
    }),
  );
  for (const close of closers) await close();
  process.stdout.write(`${JSON.stringify({ results })}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
