/**
 * Starts one Clawfleet node: the broker, the roles this process runs (all of
 * them in embedded mode) and, without the `api` role, a small health/metrics
 * server. `stop()` shuts down in the order invariant 4 needs: stop taking work,
 * let running tasks reach a step boundary and release them, then stop the broker.
 */
import type http from "node:http";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import { brokerOptions } from "../moleculer.config";
import type { Config, Role } from "../src/config";
import { TASKS_READY_CHANNEL, PLANNERS_GROUP } from "../src/domain";
import { channelsMiddleware, queueStats } from "../src/queue/channels";
import { consumerLagSeconds } from "../src/queue/consumerLag";
import { memoryAdapter, type MemoryAdapter } from "../src/queue/memoryAdapter";
import { startHealthServer } from "../src/runtime/healthServer";
import { Resources } from "../src/runtime/resources";
import { Metrics } from "../src/telemetry/metrics";
import { traceContextMiddleware } from "../src/telemetry/moleculerTracing";
import { apiService } from "./api.service";
import { checkpointService } from "./checkpoint.service";
import { executorService } from "./executor.service";
import { intakeService } from "./intake.service";
import { metricsService } from "./metrics.service";
import { plannerService } from "./planner.service";
import { rateGatewayService } from "./rate-gateway.service";

export interface ClawfleetNode {
  broker: ServiceBroker;
  resources: Resources;
  metrics: Metrics;
  /** The HTTP port actually bound (useful with PORT=0). */
  port: number;
  stop(reason?: string): Promise<void>;
}

// Start order matters for embedded mode: the store before its callers, the API last.
const ROLE_ORDER: readonly Role[] = ["checkpoint", "executor", "rate-gateway", "metrics", "planner", "intake", "api"];

export async function startNode(config: Config): Promise<ClawfleetNode> {
  let adapter: MemoryAdapter | undefined;
  const channels =
    config.mode === "embedded"
      ? channelsMiddleware({ mode: "embedded", adapter: (adapter = memoryAdapter({ serializer: "JSON", deadLettering: { enabled: true, queueName: "tasks.dead" } })) })
      : channelsMiddleware({ mode: "distributed", redisUrl: config.redisUrl ?? "", namespace: config.namespace });
  // Trace context rides in ctx.meta across nodes (Moleculer's own tracing stays off).
  const broker = new ServiceBroker({ ...brokerOptions(config, [channels, traceContextMiddleware()]), skipProcessEventRegistration: true });
  const logger = broker.getLogger("clawfleet");
  const resources = new Resources(config, {
    info: (m) => logger.info(m),
    warn: (m) => logger.warn(m),
  });
  const metrics = new Metrics({ node: broker.nodeID }, { enabled: config.metricsEnabled });

  const queueDepth = async () => {
    if (adapter) {
      const d = adapter.depth(TASKS_READY_CHANNEL);
      return { waiting: d.waiting, inFlight: d.inFlight };
    }
    return queueStats(resources.redis(), config.namespace, TASKS_READY_CHANNEL, PLANNERS_GROUP);
  };
  const waiting = async () => (await queueDepth().catch(() => undefined))?.waiting;
  // The in-process queue keeps no timestamps; its lag is not measured (the gauge stays 0).
  const queueLag = adapter
    ? undefined
    : () => consumerLagSeconds(resources.redis(), config.namespace, TASKS_READY_CHANNEL, PLANNERS_GROUP);

  const factories: Record<Role, () => ServiceSchema> = {
    checkpoint: () => checkpointService(resources),
    executor: () => executorService(resources, metrics),
    "rate-gateway": () => rateGatewayService(resources, metrics),
    metrics: () => metricsService(resources, metrics, queueDepth, queueLag),
    planner: () => plannerService(resources, metrics),
    intake: () => intakeService(resources, waiting),
    api: () => apiService(resources, metrics.registry),
  };
  for (const role of ROLE_ORDER) if (config.services.includes(role)) broker.createService(factories[role]());

  let healthServer: http.Server | undefined;
  try {
    await broker.start();
    // Start-up (module loading, PGlite's WebAssembly, migrations) may hold the event loop; liveness judges what follows.
    resources.health.markStarted();
    if (!config.services.includes("api")) healthServer = await startHealthServer(config.port, resources.health, metrics.registry);
  } catch (err) {
    await broker.stop().catch(() => undefined);
    await resources.close();
    throw err;
  }
  const apiServer = (broker.getLocalService("api") as unknown as { server?: http.Server } | undefined)?.server;
  const address = (apiServer ?? healthServer)?.address();
  const port = typeof address === "object" && address !== null ? address.port : config.port;

  let stopping: Promise<void> | undefined;
  return {
    broker,
    resources,
    metrics,
    port,
    stop(reason = "stop requested") {
      stopping ??= (async () => {
        logger.info({ event: "node.stopping", reason }, "stopping: no new work, releasing running tasks");
        const planner = broker.getLocalService("planner") as unknown as { drain?(ms: number): Promise<boolean> } | undefined;
        if (planner?.drain) {
          const drained = await planner.drain(config.shutdownGraceMs);
          if (!drained) logger.warn({ event: "node.drain_timeout" }, "grace period over with tasks still running; their leases will lapse");
        }
        await broker.stop();
        if (healthServer) await new Promise<void>((r) => healthServer?.close(() => r()));
        await resources.close();
        logger.info({ event: "node.stopped" }, "stopped");
      })();
      return stopping;
    },
  };
}
