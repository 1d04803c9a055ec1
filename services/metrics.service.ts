/**
 * `metrics`: cluster-wide gauges (tasks by status, queue depth and consumer lag —
 * the autoscaling signal). Task, step, LLM and tool series are recorded by the
 * processes that do the work (planners, gateways, executors), not from events.
 */
import type { ServiceSchema } from "moleculer";
import type { Resources } from "../src/node/resources";
import type { Metrics } from "../src/telemetry/metrics";

export function metricsService(resources: Resources, metrics: Metrics): ServiceSchema {
  const { backends } = resources;
  return {
    name: "metrics",
    started() {
      metrics.attachClusterSource({
        countByStatus: () => this.broker.call("checkpoint.countByStatus"),
        queueDepth: () => backends.queueDepth(),
        ...(backends.queueLagSeconds ? { queueLagSeconds: backends.queueLagSeconds } : {}),
      });
      resources.health.register("metrics");
    },
    stopped() {
      metrics.attachClusterSource(undefined);
      resources.health.unregister("metrics");
    },
  };
}
