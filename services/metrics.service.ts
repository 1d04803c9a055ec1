/**
 * `metrics`: cluster-wide gauges (tasks by status, queue depth — the autoscaling
 * signal) and counters fed by the planners' events.
 */
import type { Context, ServiceSchema } from "moleculer";
import type { Resources } from "../src/runtime/resources";
import type { Metrics } from "../src/telemetry/metrics";

export function metricsService(res: Resources, metrics: Metrics, queueDepth: () => Promise<{ waiting: number; inFlight: number } | undefined>): ServiceSchema {
  return {
    name: "metrics",
    events: {
      "task.step": {
        handler(ctx: Context<{ kind?: string }>) {
          const kind = ctx.params.kind === "tool" ? "tool" : "llm";
          metrics.steps.inc({ kind });
        },
      },
    },
    started() {
      metrics.attachClusterSource({
        countByStatus: () => this.broker.call("checkpoint.countByStatus"),
        queueDepth,
      });
      res.health.register("metrics");
    },
    stopped() {
      metrics.attachClusterSource(undefined);
      res.health.unregister("metrics");
    },
  };
}
