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
import type * as OtlpHttp from "@opentelemetry/exporter-trace-otlp-http";
import type * as Resources from "@opentelemetry/resources";
import type * as SdkNode from "@opentelemetry/sdk-node";
import type * as SemConv from "@opentelemetry/semantic-conventions";
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
  // Loaded only when tracing is on: the SDK costs a process 0.2 s or more of CPU at start, and with tracing
  // off the API (`@opentelemetry/api`) answers every span call with its no-op tracer.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { NodeSDK } = require("@opentelemetry/sdk-node") as typeof SdkNode;
  const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-http") as typeof OtlpHttp;
  const { defaultResource, resourceFromAttributes } = require("@opentelemetry/resources") as typeof Resources;
  const { ATTR_SERVICE_NAME } = require("@opentelemetry/semantic-conventions") as typeof SemConv;
  /* eslint-enable @typescript-eslint/no-require-imports */
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
