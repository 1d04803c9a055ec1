/**
 * A local OTLP/HTTP trace receiver for tests and benchmarks: accepts
 * `POST /v1/traces` with JSON bodies (the protocol Clawfleet exports), keeps
 * every span flattened with its resource's service name.
 */
import http from "node:http";
import zlib from "node:zlib";

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  /** The span's links (trace and span ids), e.g. to a caller's span it did not adopt as parent. */
  links: Array<{ traceId: string; spanId: string }>;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, unknown>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  service: string;
  startNs: bigint;
  endNs: bigint;
}

export interface OtlpReceiver {
  url: string;
  spans: ReceivedSpan[];
  /** The request bodies as received (JSON text), for grepping. */
  bodies: string[];
  /** Requests that were not valid OTLP JSON. */
  rejected: number;
  close(): Promise<void>;
}

type AnyValue = { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean; arrayValue?: { values?: AnyValue[] } };

function valueOf(v: AnyValue | undefined): unknown {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(valueOf);
  return undefined;
}

function attributesOf(list: Array<{ key: string; value: AnyValue }> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of list ?? []) out[a.key] = valueOf(a.value);
  return out;
}

/** OTLP JSON carries 64-bit times as strings (or numbers). */
function nanos(v: unknown): bigint {
  return typeof v === "string" || typeof v === "number" ? BigInt(v) : 0n;
}

export function flatten(body: unknown): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  const resourceSpans = (body as { resourceSpans?: unknown[] }).resourceSpans ?? [];
  for (const rs of resourceSpans as Array<{ resource?: { attributes?: Array<{ key: string; value: AnyValue }> }; scopeSpans?: Array<{ spans?: unknown[] }> }>) {
    const serviceName = attributesOf(rs.resource?.attributes)["service.name"];
    const service = typeof serviceName === "string" ? serviceName : "";
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of (ss.spans ?? []) as Array<Record<string, unknown>>) {
        const parent = typeof s.parentSpanId === "string" && s.parentSpanId !== "" ? s.parentSpanId : undefined;
        out.push({
          traceId: String(s.traceId),
          spanId: String(s.spanId),
          parentSpanId: parent,
          links: ((s.links ?? []) as Array<{ traceId?: unknown; spanId?: unknown }>).map((l) => ({ traceId: String(l.traceId), spanId: String(l.spanId) })),
          name: String(s.name),
          kind: Number(s.kind ?? 0),
          attributes: attributesOf(s.attributes as Array<{ key: string; value: AnyValue }>),
          statusCode: Number((s.status as { code?: number } | undefined)?.code ?? 0),
          service,
          startNs: nanos(s.startTimeUnixNano),
          endNs: nanos(s.endTimeUnixNano),
        });
      }
    }
  }
  return out;
}

export async function startOtlpReceiver(opts: { keep?: boolean } = {}): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const bodies: string[] = [];
  const receiver: OtlpReceiver = { url: "", spans, bodies, rejected: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let raw = Buffer.concat(chunks);
      try {
        if (req.headers["content-encoding"] === "gzip") raw = zlib.gunzipSync(raw);
        if (req.method !== "POST" || req.url !== "/v1/traces" || !String(req.headers["content-type"]).includes("json")) throw new Error("not OTLP JSON");
        const text = raw.toString("utf8");
        const got = flatten(JSON.parse(text));
        if (opts.keep !== false) {
          spans.push(...got);
          bodies.push(text);
        }
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end("{}");
      } catch {
        receiver.rejected++;
        res.writeHead(400, { "Content-Type": "application/json" });
        res.end('{"error":"bad request"}');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  receiver.url = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  receiver.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return receiver;
}
