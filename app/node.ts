/**
 * Starts one Clawfleet node: the broker, the roles this process runs (all of
 * them in embedded mode) and, without the `api` role, a small health/metrics
 * server. `stop()` shuts down in the order invariant 4 (docs/invariants.md) needs: stop taking work,
 * let running tasks reach a step boundary and release them, then stop the broker.
 */
import type http from "node:http";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import { brokerOptions } from "../moleculer.config";
import type { Config, Role } from "../src/config";
import { startHealthServer } from "../src/health/server";
import { Resources } from "../src/node/resources";
import { Metrics } from "../src/telemetry/metrics";
import { traceContextMiddleware } from "../src/telemetry/moleculerTracing";
import { apiService } from "../services/api.service";
import { checkpointService } from "../services/checkpoint.service";
import { executorService } from "../services/executor.service";
import { intakeService } from "../services/intake.service";
import { metricsService } from "../services/metrics.service";
import { plannerService } from "../services/planner.service";
import { rateGatewayService } from "../services/rate-gateway.service";

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
  // The backends of the mode (backends.ts) come first: the broker is built with their channels middleware.
  const resources = new Resources(config);
  // Trace context rides in ctx.meta across nodes (Moleculer's own tracing stays off).
  const broker = new ServiceBroker({ ...brokerOptions(config, [resources.backends.channels, traceContextMiddleware()]), skipProcessEventRegistration: true });
  const logger = broker.getLogger("clawfleet");
  resources.useLogger({ info: (m) => logger.info(m), warn: (m) => logger.warn(m) });
  const metrics = new Metrics({ node: broker.nodeID }, { enabled: config.metricsEnabled });

  const factories: Record<Role, () => ServiceSchema> = {
    checkpoint: () => checkpointService(resources),
    executor: () => executorService(resources, metrics),
    "rate-gateway": () => rateGatewayService(resources, metrics),
    metrics: () => metricsService(resources, metrics),
    planner: () => plannerService(resources, metrics),
    intake: () => intakeService(resources),
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
