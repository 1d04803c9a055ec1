/**
 * Work per task: what one order-router task costs the shared services, net of
 * the background work (reapers, switch boards, heartbeats) the same processes do
 * while idle. Three windows, back to back: idle, then `n` tasks, each window
 * closed by a settled pg_stat_database reading; the idle window's rates are
 * subtracted from the busy one's counts.
 *
 *   Postgres commits   pg_stat_database.xact_commit of the run's own database
 *   Redis commands     sent by the layout's processes (MONITOR, by command name),
 *                      and the server-wide INFO commandstats delta beside it
 *   Moleculer traffic  broker calls by action, remote requests, events, NATS packets
 */
import type { RunningLayout } from "./layouts";
import { submitBurst, waitFinished, warmUp } from "./driver";
import { brokerCounts, byCommand, commandStats, delta, RedisTap, settledPgCommits, sleep } from "./meters";

export interface Work {
  layout: string;
  tasks: number;
  /** Tasks that ended `succeeded`: a failing build shows here, and its counts are not an order-router task's. */
  succeeded: number;
  stepsPerTask: number;
  idleSeconds: number;
  busySeconds: number;
  /** Net of the idle rate, per task. */
  pgCommitsPerTask: number;
  /** Idle commits per second. */
  pgIdlePerSecond: number;
  /** Commits of background work estimated in the busy window (subtracted). */
  pgBackgroundInBusy: number;
  redisPerTask: Map<string, number>;
  redisIdlePerSecond: Map<string, number>;
  /** Server-wide INFO commandstats over the busy window, per task, not net of anything (the server is shared). */
  commandStatsPerTask: Map<string, number>;
  brokerPerTask: Map<string, number>;
  brokerIdlePerSecond: Map<string, number>;
}

/**
 * The busy window's counts of what the idle window never did, per task. A key (a
 * Redis command and key shape, a broker action) seen while idle is background work
 * (reapers, switch boards, lag metrics, lease keepers): it is left out here and
 * reported per second. Subtracting idle *rates* instead would over-subtract on a
 * loaded machine, where the background timers fire less often while tasks run.
 */
function perTaskOnly(busy: Map<string, number>, idle: Map<string, number>, tasks: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of busy) if (!idle.has(k)) out.set(k, v / tasks);
  return out;
}

function total(m: Map<string, number>, filter: (k: string) => boolean = () => true): number {
  return [...m].filter(([k]) => filter(k)).reduce((s, [, v]) => s + v, 0);
}

const isCall = (k: string) => k.startsWith("call ");

function perSecond(m: Map<string, number>, s: number): Map<string, number> {
  return new Map([...m].map(([k, v]) => [k, v / s]));
}

export async function measureWork(l: RunningLayout, n: number, idleMs: number): Promise<Work> {
  if (!l.scratch) throw new Error("work per task is measured on the distributed layouts");
  const db = l.scratch.db.name;
  // Warm up: the first tasks load agents, prepare statements, open pools.
  await warmUp(l, 5);

  const tap = new RedisTap(() => l.nodes.flatMap((p) => (p.proc.pid === undefined ? [] : [p.proc.pid])));
  await tap.start();
  try {
    const a = { at: Date.now(), pg: await settledPgCommits(db), redis: tap.counts(), broker: brokerCounts(l.countsDir) };
    await sleep(idleMs);
    const b = { at: Date.now(), pg: await settledPgCommits(db), redis: tap.counts(), broker: brokerCounts(l.countsDir), stats: await commandStats() };
    const sent = await submitBurst(l.base, n, 8);
    const done = await waitFinished(l, sent.map((s) => s.id), 600_000);
    const stats = delta(await commandStats(), b.stats);
    await sleep(1_000);
    const c = { at: Date.now(), pg: await settledPgCommits(db), redis: tap.counts(), broker: brokerCounts(l.countsDir) };
    const idleS = (b.at - a.at) / 1000;
    const busyS = (c.at - b.at) / 1000;
    const idleBroker = delta(b.broker, a.broker);
    const busyBroker = delta(c.broker, b.broker);
    // Background commits while busy: the idle window's commits per background call, times the busy window's background calls.
    const idleCalls = total(idleBroker, isCall);
    const busyBackgroundCalls = total(busyBroker, (k) => isCall(k) && idleBroker.has(k));
    const background = idleCalls > 0 ? ((b.pg - a.pg) / idleCalls) * busyBackgroundCalls : 0;
    return {
      layout: l.layout,
      tasks: n,
      succeeded: done.filter((t) => t.status === "succeeded").length,
      stepsPerTask: done.reduce((s, t) => s + t.steps, 0) / n,
      idleSeconds: idleS,
      busySeconds: busyS,
      pgCommitsPerTask: (c.pg - b.pg - background) / n,
      pgIdlePerSecond: (b.pg - a.pg) / idleS,
      pgBackgroundInBusy: background,
      redisPerTask: perTaskOnly(delta(c.redis, b.redis), delta(b.redis, a.redis), n),
      redisIdlePerSecond: perSecond(delta(b.redis, a.redis), idleS),
      commandStatsPerTask: new Map([...stats].map(([k, v]) => [k, v / n])),
      brokerPerTask: perTaskOnly(busyBroker, idleBroker, n),
      brokerIdlePerSecond: perSecond(idleBroker, idleS),
    };
  } finally {
    tap.stop();
  }
}

function lines(m: Map<string, number>, indent = "    "): string {
  return [...m]
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${indent}${k.padEnd(44)} ${v.toFixed(2).padStart(8)}`)
    .join("\n");
}

export function formatWork(w: Work): string {
  return [
    `work per order-router task, layout ${w.layout}: ${w.tasks} tasks (${w.succeeded} succeeded${w.succeeded < w.tasks ? " — FAILED TASKS: not a normal task's work" : ""}), ${w.stepsPerTask.toFixed(2)} checkpointed steps per task; ` +
      `idle window ${w.idleSeconds.toFixed(1)} s, busy window ${w.busySeconds.toFixed(1)} s`,
    `  Postgres commits per task: ${w.pgCommitsPerTask.toFixed(2)} (background: ${w.pgIdlePerSecond.toFixed(2)}/s idle; ${w.pgBackgroundInBusy.toFixed(0)} estimated in the busy window, from its background calls, subtracted)`,
    `  Redis commands per task, sent by this layout's processes (background commands left out), ${total(w.redisPerTask).toFixed(2)} in all:`,
    lines(byCommand(w.redisPerTask)),
    `  the same by command and key:`,
    lines(w.redisPerTask),
    `  Redis background (idle window), per second: ${[...w.redisIdlePerSecond].map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ") || "none"}`,
    `  Moleculer per task (background actions left out): ${total(w.brokerPerTask, (k) => k.startsWith("call ")).toFixed(2)} broker calls, ` +
      `${total(w.brokerPerTask, (k) => k.startsWith("remote ")).toFixed(2)} of them remote, ${total(w.brokerPerTask, (k) => k.startsWith("packet ")).toFixed(2)} NATS packets:`,
    lines(w.brokerPerTask),
    `  Moleculer background (idle window), per second: ${[...w.brokerIdlePerSecond].map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ") || "none"}`,
    `  INFO commandstats over the busy window, server-wide (other users' commands included), per task, ${total(w.commandStatsPerTask).toFixed(2)} in all:`,
    lines(w.commandStatsPerTask),
  ].join("\n");
}
