/**
 * crash - a NATS restart while a long model call is in flight (invariant 5: the
 * provider's limits, and the tokens, are spent once per step). The cluster runs on
 * a throwaway nats-server, which is killed for a few seconds while a planner waits
 * on a 20 s model call at the rate-gateway. Both nodes stay up, so after the
 * reconnect the call keeps waiting for its answer: the model sees one request for
 * the step, and the attempt that asked checkpoints the answer.
 */
import { describe, expect, it } from "vitest";
import { orderIds } from "../../examples/order-router/lib/data";
import { readCheckpoints, simRequests, sleep, submit } from "../../testkit/crash";
import { useCrashDrill } from "../helpers/crashDrill";
import { hasService } from "../helpers/services";

const MODEL_LATENCY_MS = 20_000;
const ready = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!ready)("crash - NATS restart during a long model call", () => {
  const drill = useCrashDrill({
    name: "crashnatscall",
    throwawayServers: true,
    latencyMs: MODEL_LATENCY_MS,
    env: { CLAWFLEET_AUTH: "off" },
    layout: { planners: 1, executors: 1 },
  });

  it("reconnect - a call to a node still present keeps waiting: the model is asked once for the step, and the same attempt checkpoints its answer", async () => {
    const { sim, cluster, base, client, servers } = drill;
    const taskId = await submit(base, { order_id: orderIds()[7] });
    const deadline = Date.now() + 60_000;
    while (!(await simRequests(sim.url)).some((r) => r.user_id === taskId)) {
      if (Date.now() > deadline) throw new Error(`the task never called the model:\n${cluster.tails(20)}`);
      await sleep(100);
    }
    const askedAt = Date.now();

    await servers.nats.crash();
    await sleep(2_000);
    await servers.nats.start();

    // The step's checkpoint: written once the model answered the call that was in flight across the restart.
    let step1: Awaited<ReturnType<typeof readCheckpoints>>[number] | undefined;
    while (!step1) {
      if (Date.now() > askedAt + 3 * MODEL_LATENCY_MS) throw new Error(`step 1 never checkpointed:\n${cluster.tails(20)}`);
      await sleep(250);
      step1 = (await readCheckpoints(client, [taskId]).catch(() => [])).find((c) => c.step === 1);
    }
    // One request for the step (every request before its checkpoint was for it), answered to the attempt that made it (fence 1).
    const requests = (await simRequests(sim.url)).filter((r) => r.user_id === taskId && r.at < step1.at);
    expect(requests).toHaveLength(1);
    expect(step1.fence).toBe(1);
    const planner = cluster.get("planner-1");
    const logs = cluster.logs().filter((l) => l.node === planner.nodeId);
    // The planner did check its waiting call after the reconnect, and kept it.
    expect(logs.some((l) => l.event === "transport.calls_kept"), planner.output().slice(-3000)).toBe(true);
    // Calls other than the step's may be lost and retried by their callers (a periodic read whose answer NATS
    // dropped); the model call is not among them.
    const failed = logs.filter((l) => l.event === "transport.calls_failed").flatMap((l) => (Array.isArray(l.actions) ? (l.actions as string[]) : ["?"]));
    expect(failed.filter((a) => a.startsWith("rate-gateway."))).toEqual([]);
    process.stdout.write(`crash.natsReconnect: step 1 answered ${Math.round(step1.at - askedAt)} ms after it was asked, across a NATS restart, once\n`);
  }, 300_000);
});
