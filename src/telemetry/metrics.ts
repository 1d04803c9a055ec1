/**
 * Prometheus metrics of one process. Every metric is declared here with its
 * full label set, so a label prom-client was not told about cannot appear.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import { TASK_STATUSES } from "../domain";

export interface ClusterSource {
  countByStatus(): Promise<Record<string, number>>;
  queueDepth(): Promise<{ waiting: number; inFlight: number } | undefined>;
}

export class Metrics {
  readonly registry = new Registry();
  readonly taskOutcomes: Counter<"outcome">;
  readonly steps: Counter<"kind">;
  private source: ClusterSource | undefined;

  constructor(defaultLabels: Record<string, string>) {
    this.registry.setDefaultLabels(defaultLabels);
    collectDefaultMetrics({ register: this.registry, prefix: "clawfleet_process_" });
    this.taskOutcomes = new Counter({
      name: "clawfleet_task_outcomes_total",
      help: "Task attempts settled by this process's planners, by outcome (succeeded, failed, released, abandoned).",
      labelNames: ["outcome"],
      registers: [this.registry],
    });
    this.steps = new Counter({
      name: "clawfleet_steps_total",
      help: "Checkpointed steps written by this process's planners.",
      labelNames: ["kind"],
      registers: [this.registry],
    });
    const source = () => this.source;
    new Gauge({
      name: "clawfleet_tasks",
      help: "Tasks in the store by status (cluster-wide; exported by the metrics role).",
      labelNames: ["status"],
      registers: [this.registry],
      async collect() {
        const src = source();
        if (!src) return;
        const counts = await src.countByStatus().catch(() => undefined);
        if (!counts) return;
        for (const s of TASK_STATUSES) this.set({ status: s }, counts[s] ?? 0);
      },
    });
    new Gauge({
      name: "clawfleet_queue_messages",
      help: "Wake-ups on channel tasks.ready: waiting (not yet delivered) and in flight (delivered, not acknowledged).",
      labelNames: ["state"],
      registers: [this.registry],
      async collect() {
        const src = source();
        if (!src) return;
        const d = await src.queueDepth().catch(() => undefined);
        if (!d) return;
        this.set({ state: "waiting" }, d.waiting);
        this.set({ state: "in_flight" }, d.inFlight);
      },
    });
  }

  /** The metrics role attaches the cluster-wide source; other processes export only their own series. */
  attachClusterSource(source: ClusterSource | undefined): void {
    this.source = source;
  }
}
