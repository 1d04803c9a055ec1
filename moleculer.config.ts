/**
 * Broker settings for a Clawfleet node, derived from the validated `Config`.
 * Transport, retry, timeout and circuit-breaker policy live here; the roles a
 * node runs are picked in app/node.ts.
 */
import type { BrokerOptions, Middleware } from "moleculer";
import os from "node:os";
import pino from "pino";
import type { Config } from "./src/config";
import { ClawfleetRegenerator, isInfrastructureFailure } from "./src/errors";
import { pinoOptions, scrubbingSink, urlSecrets } from "./src/logging";
import { shutdownPlan } from "./src/agent/shutdown";
import { transportRecoveryMiddleware } from "./src/transport/recovery";
import { transporterFor } from "./src/transport/batchingNats";

/** The values that must never reach a log line, whatever field or message they end up in. */
function logSecrets(config: Config): string[] {
  return [
    config.anthropicApiKey,
    config.auth.adminKey,
    // A webhook secret in either form: as written (`whsec_…`) and its base64 alone.
    ...Object.values(config.webhooks.secrets).flatMap((s) => [s, s.replace(/^whsec_/, "")]),
    ...urlSecrets(config.databaseUrl),
    ...urlSecrets(config.redisUrl),
    ...urlSecrets(config.transporter),
  ].filter((s): s is string => s !== undefined);
}

export function brokerOptions(config: Config, middlewares: Middleware[] = []): BrokerOptions {
  return {
    namespace: config.namespace,
    nodeID: config.nodeId ?? `${os.hostname()}-${process.pid}`,
    // NATS: the packets of one turn of the event loop are written together (src/transport/batchingNats.ts).
    transporter: transporterFor(config.transporter),
    logger:
      config.logFormat === "json"
        ? {
            type: "Pino",
            options: {
              level: config.logLevel,
              // Synchronous: a line logged before a reply (a tool's `tool.executed`, a decision) is on stdout before the
              // reply leaves, so a kill -9 right after cannot lose the record of work that was done.
              pino: {
                options: pinoOptions(config.logLevel),
                destination: scrubbingSink(pino.destination({ dest: 1, sync: true }), logSecrets(config)),
              },
            },
          }
        : { type: "Console", options: { level: config.logLevel, colors: process.stdout.isTTY, moduleColors: false } },
    logLevel: config.logLevel,
    errorRegenerator: new ClawfleetRegenerator(),
    serializer: "JSON",
    // Model calls run long; the planner's own retry policy handles their failures, so the broker does not retry.
    requestTimeout: 0,
    retryPolicy: { enabled: false },
    circuitBreaker: {
      enabled: true,
      threshold: 0.5,
      minRequestCount: 20,
      windowTime: 60,
      halfOpenTime: 10_000,
      // Only infrastructure failures trip the breaker; a task's own errors (stale fence, bad input) do not.
      check: isInfrastructureFailure,
    },
    registry: { strategy: "RoundRobin", preferLocal: true },
    heartbeatInterval: 5,
    heartbeatTimeout: 15,
    // Requests this node serves get what is left of the grace period once a planner's drain is planned for.
    tracking: { enabled: true, shutdownTimeout: shutdownPlan(config.shutdownGraceMs).releaseByMs },
    // With requestTimeout 0, a call whose message NATS lost would wait forever: see transportRecovery.ts.
    middlewares: [...middlewares, transportRecoveryMiddleware()],
    metrics: { enabled: false },
    tracing: { enabled: false },
  };
}
