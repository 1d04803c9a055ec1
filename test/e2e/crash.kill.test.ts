/**
 * crash - kill -9 under load (invariants 1–3). One role per OS process: two
 * planners, two executors, the rate gateway (against a separate `clawfleet sim`
 * process, so every model call is counted at the model), api+intake+metrics and
 * checkpoint, on the real NATS, Redis and Postgres. While a stream of
 * order-router tasks runs, a random planner or executor is killed with SIGKILL
 * every ~1.5 s and restarted at once (as a new pod would be).
 *
 * Afterwards: every accepted task succeeded with the decision the seeded data
 * implies; `order_routes` holds exactly one row per routed task and none for the
 * others; and no checkpointed step was made again: no model request for (task,
 * step) reached the sim after that step's LLM checkpoint was written, and no
 * `tool.executed` line for a tool checkpoint's idempotency key was logged after
 * it, across every process incarnation, killed ones included.
 */
import { describe, expect, it } from "vitest";
import { orderIds } from "../../examples/order-router/lib/data";
import { classifiedTasks, drillEvidence, sleep, stepOfRequest, submit, waitTerminal } from "../../testkit/crash";
import { useCrashDrill } from "../helpers/crashDrill";
import { hasService } from "../helpers/services";

// Tasks keep coming while the kills go on (at least MIN_TASKS, at most MAX_TASKS), so every kill finds work in flight
// however slowly a loaded machine restarts the victims.
const MIN_TASKS = 60;
const MAX_TASKS = 150;
const SUBMIT_EVERY_MS = 700;
const KILLS = 31;
const KILL_EVERY_MS = 1500;
const VICTIMS = ["planner-1", "planner-2", "executor-1", "executor-2"] as const;
const ready = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!ready)("crash - kill -9 of planners and executors under load", () => {
  const drill = useCrashDrill({
    name: "crashkill",
    latencyMs: 150,
    env: {
      // Short leases and a brisk reaper keep 30+ recoveries inside the CI budget; bench/recovery.ts measures the defaults.
      CLAWFLEET_LEASE_TTL_MS: "2000",
      CLAWFLEET_REAPER_INTERVAL_MS: "500",
      CLAWFLEET_REAPER_QUEUED_AFTER_MS: "2000",
      // A kill costs each task it interrupts an attempt, and this drill kills far more often than any real
      // fleet crashes: the limit itself is proven in crash.poison.test.ts.
      CLAWFLEET_MAX_ATTEMPTS: "100",
      CLAWFLEET_SHUTDOWN_GRACE_MS: "5000",
    },
    layout: { planners: 2, executors: 2 },
  });

  it("kill - 30+ kill -9s mid-flight: every task succeeds as decided, one routing effect each, no checkpointed step made again", async () => {
    const { namespace, sim, cluster, base, client } = drill;
    const started = Date.now();
    const orders = orderIds().slice(300, 300 + MAX_TASKS);
    const submitted = new Map<string, string>();
    let submitError: Error | undefined;
    let kills = 0;
    let submitDone = false;
    const submitting = (async () => {
      for (const order of orders) {
        if (kills >= KILLS && submitted.size >= MIN_TASKS) break;
        submitted.set(await submit(base, { order_id: order }), order);
        await sleep(SUBMIT_EVERY_MS);
      }
      submitDone = true;
    })().catch((err: unknown) => {
      submitError = err instanceof Error ? err : new Error(String(err));
    });

    // A node counts as a victim once it is ready: killing one that is still starting proves nothing.
    const readyNodes = new Set(VICTIMS.map((n) => cluster.get(n).nodeId));
    let killsInFlight = 0;
    let leaseHolderKills = 0;
    while (kills < KILLS) {
      await sleep(KILL_EVERY_MS);
      if (submitError) throw submitError;
      const candidates = VICTIMS.filter((n) => readyNodes.has(cluster.get(n).nodeId));
      const name = candidates[Math.floor(Math.random() * candidates.length)];
      if (!name) continue;
      const victim = cluster.get(name);
      const { rows } = await client.query<{ running: number; held: number }>(
        "SELECT count(*) FILTER (WHERE status = 'running')::int AS running, count(*) FILTER (WHERE status = 'running' AND lease_owner = $1)::int AS held FROM tasks",
        [victim.nodeId],
      );
      const running = rows[0]?.running ?? 0;
      // A kill only counts while tasks are in flight: with none running, wait for the stream.
      if (running === 0) {
        if (submitDone) break; // the stream ran out first: the kill count assertion below says so
        continue;
      }
      await cluster.killAndReplace(name, (nodeId) => readyNodes.add(nodeId));
      kills++;
      killsInFlight++;
      if ((rows[0]?.held ?? 0) > 0) leaseHolderKills++;
    }
    const killPhaseMs = Date.now() - started;
    await submitting;
    if (submitError) throw submitError;
    expect(submitted.size).toBeGreaterThanOrEqual(MIN_TASKS);

    const ids = [...submitted.keys()];
    const tasks = await waitTerminal(client, ids, 240_000);
    const elapsed = Date.now() - started;
    // Let every live process flush its last log lines.
    await sleep(500);

    const { problems, checkpoints, requests, runs, redone } = await drillEvidence(client, sim.url, cluster, submitted, tasks);

    const llmCheckpoints = checkpoints.filter((c) => c.kind === "llm");
    const toolCheckpoints = checkpoints.filter((c) => c.kind === "tool");
    const retried = [...tasks.values()].filter((t) => t.attempts > 1).length;
    process.stdout.write(
      `crash.kill: ${kills} kills (${killsInFlight} with tasks running, ${leaseHolderKills} of a lease holder) in ${killPhaseMs} ms; ` +
        `${ids.length} tasks final after ${elapsed} ms; ${retried} needed more than one attempt; ` +
        `${requests.length} model requests for ${llmCheckpoints.length} LLM checkpoints, ${runs.length} tool executions for ${toolCheckpoints.length} tool checkpoints; ` +
        `${cluster.incarnations.length} process incarnations\n`,
    );
    if (problems.length > 0 || redone.length > 0) cluster.postMortem(namespace, 15, { problems, redone });

    expect(problems).toEqual([]);
    expect(redone).toEqual([]);
    expect(kills).toBeGreaterThanOrEqual(30);
    expect(killsInFlight).toBeGreaterThanOrEqual(30);
    // The proof is only as good as its evidence: every checkpoint was seen being made.
    const classified = classifiedTasks(checkpoints);
    const requested = new Set(requests.map((r) => `${r.user_id}:${stepOfRequest(r, classified.has(r.user_id ?? ""))}`));
    expect(llmCheckpoints.filter((c) => !requested.has(`${c.task_id}:${c.step}`))).toEqual([]);
    const executed = new Set(runs.map((r) => r.key));
    expect(toolCheckpoints.filter((c) => !executed.has(c.idempotency_key ?? ""))).toEqual([]);
  }, 420_000);
});
