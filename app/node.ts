/**
 * Starts one Clawfleet node: the broker, the roles this process runs (all of
 * them in embedded mode), the project's own services (the `tools` role) and,
 * without the `api` role, a small health/metrics server. `stop()` shuts down in
 * the order invariant 4 (docs/invariants.md) needs: stop taking work, let
 * running tasks reach a step boundary and release them, then stop the broker.
 */
import type http from "node:http";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import { brokerOptions } from "../moleculer.config";
import type { AgentCatalog, AgentDefinition } from "../src/agent/definition";
import { ROLES, type Config, type Role } from "../src/config";
import { ConfigError } from "../src/errors";
import { startHealthServer } from "../src/health/server";
import { Resources } from "../src/node/resources";
import { Metrics } from "../src/telemetry/metrics";
import { traceContextMiddleware } from "../src/telemetry/moleculerTracing";
import { lendNodeResources } from "../src/tools/nodeHandle";
import type { ToolDefinition } from "../src/tools/tool";
import { apiService } from "../services/api.service";
import { checkpointService } from "../services/checkpoint.service";
import { executorService } from "../services/executor.service";
import { intakeService } from "../services/intake.service";
import { metricsService } from "../services/metrics.service";
import { plannerService } from "../services/planner.service";
import { rateGatewayService } from "../services/rate-gateway.service";
import { loadAgents } from "./agents";
import { createUserServices, loadUserServices } from "./userServices";

/** What a node runs besides what its Config names: the parts a program hands to `startNode` in code. */
export interface NodeParts {
  /** Agents defined in code (`defineAgent`), served with those of the agent files. */
  agents?: readonly AgentDefinition[];
  /** In-process tools (`defineTool`), run by this node's executor. */
  tools?: readonly ToolDefinition[];
}

export interface ClawfleetNode {
  broker: ServiceBroker;
  resources: Resources;
  /** The agents this node serves. */
  agents: AgentCatalog;
  metrics: Metrics;
  /** The HTTP port actually bound (useful with PORT=0). */
  port: number;
  /**
   * `since`: when the stop was asked for (`Date.now()`), where that was before this call (a signal that came
   * while the node was starting): the grace period is one budget from then. @default now
   */
  stop(reason?: string, since?: number): Promise<void>;
}

// Start order matters for embedded mode: the store before its callers, the project's tools before the
// planner offers them, the API last.
const ROLE_ORDER: readonly Role[] = ["checkpoint", "executor", "rate-gateway", "metrics", "tools", "planner", "intake", "api"];

/** Names of Clawfleet's own services: a project's service may not take one. */
const OWN_SERVICES: ReadonlySet<string> = new Set(ROLES.filter((r) => r !== "tools"));

export async function startNode(config: Config, parts: NodeParts = {}): Promise<ClawfleetNode> {
  const tools = parts.tools ?? [];
  if (tools.length > 0 && !config.services.includes("executor")) {
    throw new ConfigError(
      "tools",
      `in-process tools run in the executor of their process, and this one runs ${config.services.join(", ")}; ` +
        "give them to the process that runs the executor, or serve them from a tool service (ClawfleetTools mixin)",
    );
  }
  const agents = loadAgents(config, parts.agents);
  const runsTools = config.services.includes("tools");
  const userServices = runsTools ? await loadUserServices(config) : [];
  if (runsTools && userServices.length === 0 && config.services.length === 1) {
    throw new ConfigError(
      "CLAWFLEET_USER_SERVICES",
      `SERVICES=tools runs the project's own services, and ${config.userServices.patterns.join(", ") || "none"} names no file`,
    );
  }
  // The backends of the mode (backends.ts) come first: the broker is built with their channels middleware.
  const resources = new Resources(config, agents);
  // Trace context rides in ctx.meta across nodes (Moleculer's own tracing stays off).
  const broker = new ServiceBroker({ ...brokerOptions(config, [resources.backends.channels, traceContextMiddleware()]), skipProcessEventRegistration: true });
  const logger = broker.getLogger("clawfleet");
  resources.useLogger({ info: (m) => logger.info(m), warn: (m) => logger.warn(m) });
  const metrics = new Metrics({ node: broker.nodeID }, { enabled: config.metricsEnabled });
  // The project's services (ClawfleetTools mixin) reach the node's database through the broker, on any node.
  lendNodeResources(broker, resources);

  const factories: Record<Exclude<Role, "tools">, () => ServiceSchema> = {
    checkpoint: () => checkpointService(resources),
    executor: () => executorService(resources, metrics, tools),
    "rate-gateway": () => rateGatewayService(resources, metrics),
    metrics: () => metricsService(resources, metrics),
    planner: () => plannerService(resources, metrics),
    intake: () => intakeService(resources, metrics),
    api: () => apiService(resources, metrics.registry),
  };

  let healthServer: http.Server | undefined;
  try {
    for (const role of ROLE_ORDER) {
      if (!config.services.includes(role)) continue;
      if (role === "tools") createUserServices(broker, userServices, OWN_SERVICES);
      else broker.createService(factories[role]());
    }
    await broker.start();
    // The project's services are up: broker.start ran their `started` hooks.
    if (runsTools) resources.health.register("tools");
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
    agents,
    metrics,
    port,
    stop(reason = "stop requested", since?: number) {
      stopping ??= (async () => {
        // One budget from here: the planner's drain and the broker's stop both fit in CLAWFLEET_SHUTDOWN_GRACE_MS.
        const startedAt = Math.min(since ?? Date.now(), Date.now());
        logger.info({ event: "node.stopping", reason }, "stopping: no new work, releasing running tasks");
        const planner = broker.getLocalService("planner") as unknown as { drain?(graceMs: number, startedAt: number): Promise<boolean> } | undefined;
        if (planner?.drain) {
          const drained = await planner.drain(config.shutdownGraceMs, startedAt);
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
