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
 *   had time to reconnect, each node asks the nodes it is waiting on which of its
 *   calls they are still serving (`RECOVERY_INFLIGHT_ACTION`). Those keep waiting
 *   for their answer: a healthy 40 s model call is not made twice, its tokens not
 *   spent twice. The others (their node gone, restarted, silent, or the request or
 *   its reply lost) are failed with Moleculer's retryable `RequestRejectedError`.
 *   Callers retry as for any passing failure; a duplicate is harmless
 *   (checkpoints, fencing, tool idempotency keys), a hang is not.
 */
import { Errors, type Context, type Middleware, type ServiceBroker } from "moleculer";
import { messageOf } from "../errors";

/**
 * Time for every other node to reconnect too before in-flight calls are failed:
 * nats.js retries every 2 s (+ jitter), so all clients are back within about that
 * much of each other; calls made before then may have gone to a peer not yet
 * re-subscribed.
 */
export const RECONNECT_SETTLE_MS = 3000;

/** How long a node waiting on calls gives their node to say which it still serves; silence counts as gone. */
export const INFLIGHT_PROBE_TIMEOUT_MS = 5000;

/** The service every node runs (created by the middleware) and its action: which of the given request ids it is serving. */
export const RECOVERY_SERVICE = "$clawfleet-recovery";
export const RECOVERY_INFLIGHT_ACTION = `${RECOVERY_SERVICE}.inflight`;

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

/**
 * After a reconnect: the calls still waiting, grouped by the node serving them, each group kept if that node
 * says it is still serving the call, failed otherwise. Returns how many were failed.
 */
export async function sweepPendingCalls(
  transit: TransitInternals,
  probe: (nodeID: string, ids: string[]) => Promise<string[]>,
): Promise<{ failed: number; kept: number; failedActions: string[] }> {
  const byNode = new Map<string, string[]>();
  const actionOf = new Map<string, string>();
  for (const [id, req] of transit.pendingRequests) {
    // The probes themselves are in flight too: they have their own timeout.
    if (req.action.name === RECOVERY_INFLIGHT_ACTION) continue;
    actionOf.set(id, req.action.name);
    const ids = byNode.get(req.nodeID) ?? [];
    ids.push(id);
    byNode.set(req.nodeID, ids);
  }
  const outcomes = await Promise.all(
    [...byNode].map(async ([nodeID, ids]) => {
      const serving = new Set(await probe(nodeID, ids).catch(() => [] as string[]));
      const lost = ids.filter((id) => !serving.has(id));
      const failed = failPendingCalls(transit, new Set(lost));
      return { failed, kept: ids.length - failed, failedActions: lost.map((id) => actionOf.get(id) ?? "?") };
    }),
  );
  return outcomes.reduce(
    (a, c) => ({ failed: a.failed + c.failed, kept: a.kept + c.kept, failedActions: [...a.failedActions, ...c.failedActions] }),
    { failed: 0, kept: 0, failedActions: [] as string[] },
  );
}

export function transportRecoveryMiddleware(settleMs = RECONNECT_SETTLE_MS, probeTimeoutMs = INFLIGHT_PROBE_TIMEOUT_MS): Middleware {
  // Requests this node is serving for other nodes, by request id (the caller's key for the call).
  const serving = new Set<string>();
  return {
    created(broker: ServiceBroker) {
      broker.createService({
        name: RECOVERY_SERVICE,
        actions: {
          inflight: {
            visibility: "public",
            handler(ctx: Context<{ ids?: unknown }>): string[] {
              const ids = Array.isArray(ctx.params.ids) ? ctx.params.ids : [];
              return ids.filter((id): id is string => typeof id === "string" && serving.has(id));
            },
          },
        },
      });
    },
    localAction(next: (ctx: Context) => Promise<unknown>) {
      return (ctx: Context) => {
        if (ctx.nodeID === undefined || ctx.nodeID === null || ctx.nodeID === ctx.broker.nodeID) return next(ctx);
        const id = ctx.id;
        serving.add(id);
        return next(ctx).then(
          (res) => {
            serving.delete(id);
            return res;
          },
          (err: unknown) => {
            serving.delete(id);
            throw err;
          },
        );
      };
    },
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
          const probe = (nodeID: string, ids: string[]) => broker.call<string[], { ids: string[] }>(RECOVERY_INFLIGHT_ACTION, { ids }, { nodeID, timeout: probeTimeoutMs });
          const timer = setTimeout(() => {
            sweepPendingCalls(transit, probe).then(
              ({ failed, kept, failedActions }) => {
                if (failed > 0) {
                  logger.warn({ event: "transport.calls_failed", calls: failed, kept, actions: failedActions }, `failed ${failed} call(s) lost while NATS was away; callers retry`);
                }
                if (kept > 0) logger.info({ event: "transport.calls_kept", calls: kept }, `${kept} call(s) still being served; waiting for their answers`);
              },
              (err: unknown) => logger.warn({ event: "transport.sweep_failed", err: messageOf(err) }, "could not check the calls waiting from before the reconnect"),
            );
          }, settleMs);
          timer.unref();
        }
      })().catch((err: unknown) => logger.warn({ event: "transport.status_failed", err: String(err) }, "stopped watching the NATS connection"));
    },
  };
}
