/**
 * taskStream - the live stream survives its connection being dropped: two api
 * replicas over one cluster (NATS, Redis, Postgres; two planners), tasks on
 * the sim, one client per task that cuts its stream at random moments (before
 * the first event, between events, mid-frame, on a timer) and reconnects with
 * `Last-Event-ID` to a replica picked at random. Midway one replica is killed
 * (SIGKILL) and started again. Every client must end up with exactly the
 * task's events, in order: no gap, no duplicate, the terminal event last.
 */
import { describe, expect, it } from "vitest";
import { sleep, submit } from "../../testkit/crash";
import { readSse, type SseFrame } from "../../testkit/sse";
import { useCrashDrill } from "../helpers/crashDrill";
import { hasService } from "../helpers/services";
import { seededRandom } from "../../testkit/random";

const ready = hasService("postgres") && hasService("redis") && hasService("nats");
const DROPS = Number(process.env.CLAWFLEET_STREAM_DROPS ?? 1000);
const SEED = Number(process.env.CLAWFLEET_STREAM_SEED ?? 20261203);
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
/** Clients following a task at once: enough to interleave, few enough not to be a load test. */
const CLIENTS = 12;


interface Client {
  taskId: string;
  received: SseFrame[];
  lastId?: string;
  done: boolean;
}

describe.skipIf(!ready)("taskStream - 1,000 dropped connections, two replicas, one restarted", () => {
  const drill = useCrashDrill({
    name: "streamdrops",
    latencyMs: 60,
    env: { CLAWFLEET_REAPER_INTERVAL_MS: "500" },
    layout: { planners: 2, executors: 1 },
  });

  it("every client gets every event exactly once, in order, and the terminal event", async () => {
    const { cluster, base } = drill;
    const second = await cluster.start("api-2", "api");
    const replicas = () => [base, ...(cluster.get("api-2").alive() ? [`http://127.0.0.1:${cluster.get("api-2").port}`] : [])];
    void second;
    const rnd = seededRandom(SEED);
    const stats = { drops: 0, beforeFirstId: 0, midStream: 0, refused: 0, unavailable: 0, cutByRestart: 0, reconnects: 0, restarted: false };
    const clients: Client[] = [];

    const follow = async (c: Client): Promise<void> => {
      while (!c.done) {
        const urls = replicas();
        const url = urls[Math.floor(rnd() * urls.length)] ?? base;
        const onSecond = url !== base;
        // Cut after 0-3 events, or on a timer (often before anything came), whichever is first.
        const cutAfterFrames = Math.floor(rnd() * 4);
        const cutAfterMs = 5 + Math.floor(rnd() * 120);
        let frames = 0;
        const hadId = c.lastId !== undefined;
        const r = await readSse(`${url}/v1/tasks/${c.taskId}/events`, {
          ...(c.lastId !== undefined ? { lastEventId: c.lastId } : {}),
          cutAfterMs,
          onFrame: (f) => {
            c.received.push(f);
            if (f.id !== undefined) c.lastId = f.id;
            if (TERMINAL.has(f.event)) {
              c.done = true;
              return false;
            }
            return ++frames < cutAfterFrames || cutAfterFrames === 0;
          },
        });
        stats.reconnects++;
        if (c.done) break;
        // A replica still joining the cluster answers 503 (retry later), as one that is down refuses the connection.
        if (r.status === 503) {
          stats.unavailable++;
          await sleep(50);
          continue;
        }
        if (r.status !== 0 && r.status !== 200) throw new Error(`stream of ${c.taskId} answered ${r.status}: ${r.body}`);
        if (r.ended === "failed" || r.status === 0) {
          if (r.status === 0) stats.refused++;
          else if (onSecond) stats.cutByRestart++;
          await sleep(100);
          continue;
        }
        stats.drops++;
        await sleep(Math.floor(rnd() * 20));
        if (!hadId && c.lastId === undefined) stats.beforeFirstId++;
        else stats.midStream++;
      }
    };

    const running: Array<Promise<void>> = [];
    const restart = (async () => {
      while (stats.drops < DROPS * 0.4) await sleep(50);
      await cluster.kill("api-2");
      await sleep(500);
      await cluster.start("api-2");
      stats.restarted = true;
    })();
    // A dozen clients at a time, a new task for each one that finishes, until the drops are in.
    const active = new Set<Promise<void>>();
    while (stats.drops < DROPS || !stats.restarted) {
      while (active.size < CLIENTS) {
        const taskId = await submit(base, { order_id: `ORD-${1000 + (clients.length % 40)}` });
        const c: Client = { taskId, received: [], done: false };
        clients.push(c);
        const p: Promise<void> = follow(c).finally(() => active.delete(p));
        active.add(p);
        running.push(p);
      }
      await Promise.race(active);
      if (clients.length > 600) throw new Error(`only ${stats.drops} drops after ${clients.length} tasks`);
    }
    await restart;
    await Promise.all(running);

    // The canonical events of each task, read once in one go now that it has ended.
    let gaps = 0;
    let duplicates = 0;
    let terminals = 0;
    let events = 0;
    const problems: string[] = [];
    for (const c of clients) {
      const all: SseFrame[] = [];
      await readSse(`${base}/v1/tasks/${c.taskId}/events`, { onFrame: (f) => void all.push(f) });
      const want = all.map((f) => f.id);
      const got = c.received.map((f) => f.id);
      events += got.length;
      duplicates += got.length - new Set(got).size;
      gaps += want.filter((id) => !got.includes(id)).length;
      if (TERMINAL.has(c.received.at(-1)?.event ?? "")) terminals++;
      if (JSON.stringify(c.received) !== JSON.stringify(all)) problems.push(`${c.taskId}: got ${got.join(",")} want ${want.join(",")}`);
    }
    process.stdout.write(
      `stream drops: ${stats.drops} (${stats.beforeFirstId} before the first id, ${stats.midStream} after one), ` +
        `${stats.cutByRestart} cut by the replica's restart, ${stats.refused} refused while it was down, ${stats.unavailable} answered 503; ` +
        `${clients.length} tasks, ${events} events delivered, ${gaps} gaps, ${duplicates} duplicates, ${terminals}/${clients.length} terminal events (seed ${SEED})\n`,
    );
    expect(problems.slice(0, 5)).toEqual([]);
    expect({ gaps, duplicates, terminals }).toEqual({ gaps: 0, duplicates: 0, terminals: clients.length });
    expect(stats.drops).toBeGreaterThanOrEqual(DROPS);
    expect(stats.beforeFirstId).toBeGreaterThan(0);
    expect(stats.restarted).toBe(true);
  }, 300_000);
});
