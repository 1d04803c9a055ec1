/**
 * What a node does when its NATS connection comes back (a NATS restart, a
 * network cut). Two gaps of Moleculer 0.14 with nats.js v2 are closed here:
 *
 * - Its NATS v2 transporter logs reconnects at debug level and nothing more:
 *   Moleculer's own reconnect handling (re-announce this node, rediscover the
 *   others, `$transporter.connected` with `wasReconnect`) only runs for nats v1.
 *   It is run here.
 * - NATS core delivers at most once: a request or its reply that was in flight
 *   when the connection dropped, or that reached the server before its receiver
 *   had re-subscribed, is lost. With `requestTimeout: 0` (model calls run long)
 *   its caller then waits forever: a planner holding its lease on a task that
 *   never moves, the reaper stuck in one sweep for good. So once the cluster has
 *   had time to reconnect, every call still waiting from before is failed with
 *   Moleculer's retryable `RequestRejectedError`. Callers retry as for any
 *   passing failure; a duplicate is harmless (checkpoints, fencing, tool
 *   idempotency keys), a hang is not.
 */
import { Errors, type Middleware, type ServiceBroker } from "moleculer";

/**
 * Time for every other node to reconnect too before in-flight calls are failed:
 * nats.js retries every 2 s (+ jitter), so all clients are back within about that
 * much of each other; calls made before then may have gone to a peer not yet
 * re-subscribed.
 */
export const RECONNECT_SETTLE_MS = 3000;

interface PendingRequest {
  action: { name: string };
  nodeID: string;
  reject(err: Error): void;
}

/** The Moleculer internals this touches; typed here, checked at run time. */
interface TransitInternals {
  pendingRequests: Map<string, PendingRequest>;
  pendingReqStreams?: Map<string, unknown>;
  pendingResStreams?: Map<string, unknown>;
  tx?: { client?: { status?(): AsyncIterable<{ type: string }> }; onConnected?(wasReconnect: boolean): Promise<unknown> };
}

/** Fails the given waiting calls with a retryable `RequestRejectedError`, as Moleculer does for a node that left. Returns how many. */
export function failPendingCalls(transit: TransitInternals, ids: ReadonlySet<string>): number {
  let failed = 0;
  for (const id of ids) {
    const req = transit.pendingRequests.get(id);
    if (!req) continue;
    transit.pendingRequests.delete(id);
    transit.pendingReqStreams?.delete(id);
    transit.pendingResStreams?.delete(id);
    req.reject(new Errors.RequestRejectedError({ action: req.action.name, nodeID: req.nodeID }));
    failed++;
  }
  return failed;
}

export function transportRecoveryMiddleware(settleMs = RECONNECT_SETTLE_MS): Middleware {
  return {
    started(broker: ServiceBroker) {
      const transit = broker.transit as unknown as TransitInternals | undefined;
      const tx = transit?.tx;
      const status = tx?.client?.status?.bind(tx.client);
      if (!transit || !status) return; // embedded mode, or a transporter without a status stream
      const logger = broker.getLogger("transport");
      void (async () => {
        for await (const s of status()) {
          if (s.type === "disconnect") logger.warn({ event: "transport.disconnected" }, "NATS connection lost; reconnecting");
          if (s.type !== "reconnect") continue;
          logger.warn({ event: "transport.reconnected" }, "NATS connection restored");
          void tx?.onConnected?.(true)?.catch((err: unknown) => logger.warn({ event: "transport.rediscover_failed", err: String(err) }, "re-announcing this node failed"));
          const timer = setTimeout(() => {
            const n = failPendingCalls(transit, new Set(transit.pendingRequests.keys()));
            if (n > 0) logger.warn({ event: "transport.calls_failed", calls: n }, `failed ${n} call(s) that may have been lost while NATS was away; callers retry`);
          }, settleMs);
          timer.unref();
        }
      })().catch((err: unknown) => logger.warn({ event: "transport.status_failed", err: String(err) }, "stopped watching the NATS connection"));
    },
  };
}
