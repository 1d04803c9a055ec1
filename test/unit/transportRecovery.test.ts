/**
 * transport recovery - which calls a node fails after a NATS reconnect
 * (src/transport/recovery.ts sweepPendingCalls): only those whose node does not
 * say it is still serving them. test/e2e/crash.natsReconnect.test.ts proves it on
 * a real NATS restart.
 */
import { Errors } from "moleculer";
import { describe, expect, it } from "vitest";
import { RECOVERY_INFLIGHT_ACTION, sweepPendingCalls } from "../../src/transport/recovery";

function pending(calls: Array<[id: string, nodeID: string, action?: string]>) {
  const outcome = new Map<string, unknown>();
  const pendingRequests = new Map(
    calls.map(([id, nodeID, action]) => [id, { action: { name: action ?? "rate-gateway.complete" }, nodeID, reject: (err: Error) => outcome.set(id, err) }]),
  );
  return { transit: { pendingRequests }, outcome };
}

describe("transport recovery - the sweep after a reconnect", () => {
  it("sweep - calls their node still serves keep waiting; calls it does not know, or whose node is silent or gone, fail retryably", async () => {
    const { transit, outcome } = pending([
      ["long-call", "gateway-1"],
      ["lost-request", "gateway-1"],
      ["to-the-dead", "gateway-2"],
      ["to-the-restarted", "gateway-3"],
      ["a-probe", "gateway-1", RECOVERY_INFLIGHT_ACTION],
    ]);
    const asked: Array<[string, string[]]> = [];
    const result = await sweepPendingCalls(transit, async (nodeID, ids) => {
      asked.push([nodeID, ids]);
      if (nodeID === "gateway-1") return ["long-call", "someone-elses-call"];
      if (nodeID === "gateway-2") throw new Errors.RequestTimeoutError({ action: RECOVERY_INFLIGHT_ACTION, nodeID });
      return [];
    });

    expect(result).toEqual({ failed: 3, kept: 1, failedActions: ["rate-gateway.complete", "rate-gateway.complete", "rate-gateway.complete"] });
    expect([...transit.pendingRequests.keys()].sort()).toEqual(["a-probe", "long-call"]);
    expect([...outcome.keys()].sort()).toEqual(["lost-request", "to-the-dead", "to-the-restarted"]);
    for (const err of outcome.values()) {
      expect(err).toBeInstanceOf(Errors.RequestRejectedError);
      expect((err as Errors.MoleculerError).retryable).toBe(true);
    }
    // One probe per node, for that node's calls only; probes are not probed.
    expect(asked.sort()).toEqual([
      ["gateway-1", ["long-call", "lost-request"]],
      ["gateway-2", ["to-the-dead"]],
      ["gateway-3", ["to-the-restarted"]],
    ]);
  });
});
