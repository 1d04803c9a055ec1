/**
 * The OpenTelemetry SDK of one Clawfleet process. `app/cli.ts` starts it before
 * the broker and any service exist, and shuts it down after the node stopped,
 * which flushes the spans still batched. Clawfleet decides on or off from
 * `Config` (OTEL_EXPORTER_OTLP_ENDPOINT set); the SDK keeps its own handling of
 * the other OTEL_* variables (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
 * OTEL_BSP_*, OTEL_TRACES_SAMPLER, OTEL_EXPORTER_OTLP_HEADERS …).
 *
 * Traces only, as OTLP/HTTP with JSON bodies: metrics are Prometheus' (`/metrics`)
 * and logs are pino's lines (which carry trace_id and span_id). No automatic
 * instrumentation is installed, so nothing depends on module load order; the
 * spans are the ones Clawfleet creates (see spans.ts).
 */
import { diag, DiagLogLevel } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import { ROLES, type Config } from "../config";

export interface Tracing {
  readonly enabled: boolean;
  /** Routes the SDK's own errors (an unreachable collector) to the process's logger. */
  useLogger(logger: { error(obj: Record<string, unknown>, msg: string): void }): void;
  /** Flushes batched spans and stops exporting. Idempotent. */
  shutdown(): Promise<void>;
}

const OFF: Tracing = { enabled: false, useLogger: () => undefined, shutdown: async () => undefined };

/** Where traces go: the signal path appended to the base endpoint, as the OTLP exporter spec says. */
export function tracesUrl(endpoint: string): string {
  return `${endpoint.replace(/\/+$/, "")}/v1/traces`;
}

/** `clawfleet` for an all-in-one process, else `clawfleet-<roles>` (one role per process in production). */
export function serviceNameOf(services: readonly string[]): string {
  return services.length === ROLES.length ? "clawfleet" : `clawfleet-${services.join("+")}`;
}

export function startTracing(config: Pick<Config, "otlpEndpoint" | "services" | "namespace">, nodeId: string): Tracing {
  if (config.otlpEndpoint === undefined) return OFF;
  const sdk = new NodeSDK({
    resource: defaultResource().merge(
      resourceFromAttributes({
        [ATTR_SERVICE_NAME]: serviceNameOf(config.services),
        "service.namespace": config.namespace,
        "service.instance.id": nodeId,
        "clawfleet.roles": config.services.join(","),
      }),
    ),
    traceExporter: new OTLPTraceExporter({ url: tracesUrl(config.otlpEndpoint) }),
    // Traces only: without these the SDK would also set up OTLP metric and log exporters from the environment.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  sdk.start();
  let stopping: Promise<void> | undefined;
  return {
    enabled: true,
    useLogger(logger) {
      const log = (...args: unknown[]) => logger.error({ event: "otel.error", detail: args.map(String).join(" ").slice(0, 500) }, "OpenTelemetry SDK error");
      diag.setLogger({ error: log, warn: () => undefined, info: () => undefined, debug: () => undefined, verbose: () => undefined }, DiagLogLevel.ERROR);
    },
    shutdown() {
      stopping ??= sdk.shutdown().catch(() => undefined);
      return stopping;
    },
  };
}
