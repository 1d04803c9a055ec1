/**
 * Requests over the REST surface, as fast-check arbitraries. A case is plain data
 * (so a counterexample prints readably and shrinks); `toRaw` turns it into bytes,
 * resolving "an id the server issued" against the ids seen so far.
 */
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import type { RawRequest } from "./rawHttp";

export const AGENT = "order-router";
/** Replaced by invalid UTF-8 byte sequences when the body is encoded (see `BAD_UTF8`). */
const BAD_MARK = "\ue000";
const BAD_UTF8 = [Buffer.from([0xff]), Buffer.from([0xc0, 0xaf]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0x80]), Buffer.from([0xe2, 0x82])];

/** Node's default `maxHeaderSize` (16 KiB), less room for the lines `rawRequest` adds. */
const MAX_HEAD_BYTES = 16 * 1024 - 200;

const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] as const;

/** Strings that tend to break things: control characters, NUL, lone surrogates, astral planes, the invalid-byte marker. */
const nasty = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.fullUnicodeString({ maxLength: 20 }),
  fc.constantFrom("", " ", "\u0000", "a\u0000b", "\ud800", "\udc00x", "\ud83d\ude00", "\u202e", "\ufeff", "null", "__proto__", "constructor", "\r\n", BAD_MARK, `x${BAD_MARK}y`),
  fc.string({ unit: fc.constantFrom("\u0000", "\ud800", "a", "\u00e9", BAD_MARK), maxLength: 12 }),
);

/** Mostly `usual`, sometimes anything `other` generates: valid enough that requests reach past the first check. */
function mostly<T, U>(usual: fc.Arbitrary<T>, other: fc.Arbitrary<U>, weight = 6): fc.Arbitrary<T | U> {
  return fc.oneof({ weight, arbitrary: usual }, { weight: 1, arbitrary: other });
}

const anyJson = fc.oneof({ weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) }, { weight: 1, arbitrary: nasty });

const idSpec = fc.oneof(
  fc.record({ known: fc.nat(), shape: fc.constantFrom("lower", "upper", "mixed") }),
  fc.record({ uuid: fc.uuid(), upper: fc.boolean() }),
  fc.record({ text: nasty, encode: fc.boolean() }),
  fc.constantFrom({ literal: ".." }, { literal: "%2e%2e" }, { literal: "%00" }, { literal: "%ZZ" }, { literal: "%" }, { literal: "" }, { literal: "x".repeat(9000) }),
);
type IdSpec = typeof idSpec extends fc.Arbitrary<infer T> ? T : never;

const pathSpec = fc.oneof(
  { weight: 8, arbitrary: fc.record({ route: fc.constant("tasks" as const) }) },
  { weight: 3, arbitrary: fc.record({ route: fc.constantFrom("task" as const, "steps" as const, "redrive" as const), id: idSpec }) },
  { weight: 1, arbitrary: fc.record({ route: fc.constantFrom("dead-letters" as const, "live" as const, "ready" as const, "metrics" as const) }) },
  { weight: 1, arbitrary: fc.record({ route: fc.constant("random" as const), segments: fc.array(nasty, { maxLength: 6 }), encode: fc.boolean() }) },
);

const query = mostly(
  fc.constant(null),
  fc.oneof(
    fc.constantFrom("limit=-1", "limit=abc", "limit=1e309", "limit=99999999999", "limit=0", "limit=2.5", "limit=", "limit=10&limit=20", "a[b]=c", "%ZZ=1"),
    fc.string({ maxLength: 30 }).map((s) => encodeBytes(s)),
  ),
  3,
);

/** A task body a step or two from valid: each field kept, dropped or replaced, and perhaps extra ones. */
const nearTask = fc.record(
  {
    agent: mostly(fc.constant(AGENT), fc.oneof(fc.constantFrom("ORDER-ROUTER", `${AGENT}\u0000`, "order router", "x".repeat(300)), anyJson), 8),
    input: mostly(fc.oneof(fc.string({ maxLength: 40 }), fc.fullUnicodeString({ maxLength: 40 }), fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })), fc.oneof(fc.dictionary(nasty, anyJson, { maxKeys: 4 }), nasty, anyJson), 4),
    priority: mostly(fc.constantFrom("high", "normal", "low"), fc.oneof(fc.constantFrom("HIGH", "urgent", ""), anyJson), 3),
    metadata: mostly(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }), fc.oneof(fc.dictionary(nasty, anyJson, { maxKeys: 4 }), anyJson), 3),
    extra: mostly(fc.constant({}), fc.dictionary(fc.oneof(nasty, fc.constantFrom("__proto__", "constructor", "status", "id")), anyJson, { minKeys: 1, maxKeys: 2 }), 5),
  },
  { requiredKeys: ["agent", "input", "extra"] },
);

const bodySpec = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("task" as const), task: nearTask }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("json" as const), value: anyJson }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("bytes" as const), bytes: fc.uint8Array({ maxLength: 120 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncated" as const), task: nearTask, cut: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("deep" as const), depth: fc.oneof(fc.integer({ min: 50, max: 200 }), fc.integer({ min: 1000, max: 30_000 })), array: fc.boolean(), where: fc.constantFrom("input", "metadata", "body") }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("huge" as const), bytes: fc.integer({ min: 1024 * 1024 - 64, max: 1024 * 1024 + 64 }), field: fc.constantFrom("input", "metadata") }) },
  { weight: 1, arbitrary: fc.constant({ kind: "none" as const }) },
);

const contentType = mostly(
  fc.constant("application/json"),
  fc.oneof(
    fc.constant(null),
    fc.constantFrom(
      "application/json",
      "application/json; charset=utf-8",
      "application/json; charset=UTF-8",
      "application/json;charset=latin1",
      "application/json; charset=iso-8859-1",
      "application/json; charset=utf-16",
      "application/json; charset=bogus",
      "APPLICATION/JSON",
      "application/vnd.api+json",
      "application/jsonx",
      "text/plain",
      "text/json",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "",
      ";",
    ),
    fc.string({ maxLength: 40 }),
  ),
  4,
);

const headerSpec = fc.record({
  contentType,
  encoding: mostly(fc.constant(null), fc.constantFrom("gzip", "deflate", "br", "identity", "x-unknown", "gzip, gzip", ""), 8),
  gzipped: fc.boolean(),
  idempotencyKey: mostly(
    fc.constant(null),
    fc.oneof(
      fc.stringMatching(/^[\x21-\x7e]{1,40}$/),
      fc.constantFrom("", " ", "k".repeat(255), "k".repeat(256), "a b", "\u00e9t\u00e9", "\t", `key-${"\u00ff".repeat(3)}`),
      fc.string({ maxLength: 300 }),
      // Repeated keys, to check that a key names one task.
      fc.constantFrom("repeat-1", "repeat-2", "repeat-3"),
    ),
    1,
  ),
  /** Sends the key header twice. */
  keyTwice: fc.boolean(),
  traceparent: mostly(
    fc.constant(null),
    fc.oneof(
      fc.constantFrom(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-0000000000000000-00",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "garbage",
        "x".repeat(8000),
      ),
      fc.string({ maxLength: 80 }),
    ),
    3,
  ),
  /** How the body's length is told: truthfully, chunked, or a lie either way. */
  framing: mostly(fc.constant("length"), fc.constantFrom("chunked", "short", "long", "none"), 8),
  charset: mostly(fc.constant("utf8"), fc.constantFrom("bom", "latin1", "utf16le"), 6),
});

/** `null`: the route's own method (POST to create or redrive, GET to read). */
export const fuzzCase = fc.record({ method: mostly(fc.constant(null), fc.constantFrom(...METHODS), 5), path: pathSpec, query, headers: headerSpec, body: bodySpec });
export type FuzzCase = typeof fuzzCase extends fc.Arbitrary<infer T> ? T : never;

/** Percent-encodes every byte outside the unreserved set, from the string's UTF-8 (lone surrogates as U+FFFD). */
export function encodeBytes(s: string): string {
  return [...Buffer.from(s, "utf8")].map((b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`)).join("");
}

function resolveId(spec: IdSpec, known: readonly string[]): string {
  if ("known" in spec) {
    const id = known.length > 0 ? (known[spec.known % known.length] as string) : "00000000-0000-4000-8000-000000000000";
    if (spec.shape === "upper") return id.toUpperCase();
    return spec.shape === "mixed" ? [...id].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join("") : id;
  }
  if ("uuid" in spec) return spec.upper ? spec.uuid.toUpperCase() : spec.uuid;
  if ("text" in spec) return spec.encode ? encodeBytes(spec.text) : spec.text;
  return spec.literal;
}

/** The request path, and whether it is the only one with a body-free answer (HEAD) */
function pathOf(c: FuzzCase, known: readonly string[]): string | Buffer {
  const p = c.path;
  const q = c.query === null ? "" : `?${c.query}`;
  switch (p.route) {
    case "tasks":
      return `/v1/tasks${q}`;
    case "task":
      return pathBytes(`/v1/tasks/${resolveId(p.id, known)}${q}`);
    case "steps":
      return pathBytes(`/v1/tasks/${resolveId(p.id, known)}/steps${q}`);
    case "redrive":
      return pathBytes(`/v1/tasks/${resolveId(p.id, known)}/redrive${q}`);
    case "dead-letters":
      return `/v1/dead-letters${q}`;
    case "live":
      return `/health/live${q}`;
    case "ready":
      return `/health/ready${q}`;
    case "metrics":
      return `/metrics${q}`;
    case "random":
      return pathBytes(`/${p.segments.map((s) => (p.encode ? encodeBytes(s) : s)).join("/")}${q}`);
  }
}

/**
 * A target as bytes on the wire: unencoded text goes out as its UTF-8, except the bytes no HTTP
 * parser takes in a request line (controls, space), which are percent-encoded so the request reaches
 * the application rather than the parser's own refusal.
 */
function pathBytes(s: string): Buffer {
  const bytes = Buffer.from(s.replaceAll(BAD_MARK, ""), "utf8");
  const out: number[] = [];
  for (const b of bytes) {
    if (b <= 0x20 || b === 0x7f) out.push(...Buffer.from(`%${b.toString(16).padStart(2, "0")}`));
    else out.push(b);
  }
  return Buffer.from(out);
}

function nested(depth: number, array: boolean): string {
  return array ? `${"[".repeat(depth)}1${"]".repeat(depth)}` : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

function taskText(t: FuzzCase["body"] & { kind: "task" | "truncated" }): string {
  const { extra, ...fields } = t.task;
  // `extra` first: a generated "agent" among them must not hide the chosen one.
  const obj: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(extra ?? {})) Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
  for (const [k, v] of Object.entries(fields)) Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
  return JSON.stringify(obj);
}

function bodyText(b: FuzzCase["body"]): string | Buffer | undefined {
  switch (b.kind) {
    case "task":
      return taskText(b);
    case "truncated": {
      const text = taskText(b);
      return text.slice(0, b.cut % Math.max(1, text.length));
    }
    case "json":
      return JSON.stringify(b.value) ?? "";
    case "bytes":
      return Buffer.from(b.bytes);
    case "deep": {
      const inner = nested(b.depth, b.array);
      if (b.where === "body") return inner;
      return b.where === "input" ? `{"agent":"${AGENT}","input":${inner}}` : `{"agent":"${AGENT}","input":"x","metadata":${nested(b.depth, false)}}`;
    }
    case "huge": {
      const prefix = `{"agent":"${AGENT}","input":`;
      const pad = Math.max(0, b.bytes - prefix.length - 40);
      return b.field === "input" ? `${prefix}"${"x".repeat(pad)}"}` : `${prefix}"x","metadata":{"k":"${"y".repeat(pad)}"}}`;
    }
    case "none":
      return undefined;
  }
}

function encodeBody(text: string | Buffer | undefined, charset: FuzzCase["headers"]["charset"]): Buffer | undefined {
  if (text === undefined || Buffer.isBuffer(text)) return text;
  let buf: Buffer;
  if (charset === "latin1") buf = Buffer.from(text, "latin1");
  else if (charset === "utf16le") buf = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")]);
  else buf = Buffer.concat([charset === "bom" ? Buffer.from([0xef, 0xbb, 0xbf]) : Buffer.alloc(0), Buffer.from(text, "utf8")]);
  // Each marker becomes one of the invalid UTF-8 sequences, chosen by where it sits.
  const mark = Buffer.from(BAD_MARK, "utf8");
  const parts: Buffer[] = [];
  let at = 0;
  for (let i = buf.indexOf(mark); i >= 0; i = buf.indexOf(mark, at)) {
    parts.push(buf.subarray(at, i), BAD_UTF8[i % BAD_UTF8.length] as Buffer);
    at = i + mark.length;
  }
  parts.push(buf.subarray(at));
  return Buffer.concat(parts);
}

function chunked(body: Buffer): Buffer {
  const half = Math.floor(body.length / 2);
  const parts = [body.subarray(0, half), body.subarray(half)].filter((p) => p.length > 0);
  return Buffer.concat([...parts.flatMap((p) => [Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from("\r\n")]), Buffer.from("0\r\n\r\n")]);
}

/**
 * The bytes of a case. `incomplete`: the request declares more body than it sends, so no answer is
 * owed. `notHttp`: the bytes break HTTP/1.1 itself (a request target with raw non-ASCII bytes, bytes
 * past the declared body that make a malformed second request, a connection closed mid-body, a head
 * past Node's 16 KiB `maxHeaderSize`), which Node's parser refuses before any route sees them.
 */
export function toRaw(c: FuzzCase, known: readonly string[]): { req: RawRequest; incomplete: boolean; notHttp: boolean } {
  const raw = toRawRequest(c, known);
  const target = Buffer.isBuffer(raw.req.target) ? raw.req.target : Buffer.from(raw.req.target, "latin1");
  const headBytes = target.length + raw.req.headers.reduce((n, [k, v]) => n + k.length + v.length + 4, 0);
  const notHttp = c.headers.framing === "long" || c.headers.framing === "short" || target.some((b) => b >= 0x80) || headBytes > MAX_HEAD_BYTES;
  return { ...raw, notHttp };
}

export function methodOf(c: FuzzCase): string {
  return c.method ?? (c.path.route === "tasks" || c.path.route === "redrive" ? "POST" : "GET");
}

function toRawRequest(c: FuzzCase, known: readonly string[]): { req: RawRequest; incomplete: boolean } {
  const h = c.headers;
  const method = methodOf(c);
  let body = encodeBody(bodyText(c.body), h.charset) ?? Buffer.alloc(0);
  if (h.gzipped && h.encoding !== null && /gzip/.test(h.encoding)) body = gzipSync(body);
  const headers: Array<[string, string | Buffer]> = [];
  if (h.contentType !== null) headers.push(["Content-Type", Buffer.from(h.contentType.replace(/[\r\n\0]/g, ""), "utf8")]);
  if (h.encoding !== null) headers.push(["Content-Encoding", h.encoding]);
  if (h.idempotencyKey !== null) {
    const value = Buffer.from(h.idempotencyKey.replace(/[\r\n\0]/g, ""), "utf8");
    headers.push(["Idempotency-Key", value]);
    if (h.keyTwice) headers.push(["Idempotency-Key", value]);
  }
  if (h.traceparent !== null) headers.push(["traceparent", Buffer.from(h.traceparent.replace(/[\r\n\0]/g, ""), "utf8")]);
  const target = pathOf(c, known);
  switch (h.framing) {
    case "chunked":
      headers.push(["Transfer-Encoding", "chunked"]);
      return { req: { method, target, headers, body: chunked(body), contentLength: null }, incomplete: false };
    case "short":
      return { req: { method, target, headers, body, contentLength: body.length + 7, halfClose: true }, incomplete: true };
    case "long":
      return { req: { method, target, headers, body, contentLength: Math.max(0, body.length - 3) }, incomplete: false };
    case "none":
      return { req: { method, target, headers, body: Buffer.alloc(0), contentLength: null }, incomplete: false };
    default:
      return { req: { method, target, headers, body }, incomplete: false };
  }
}

/** The idempotency key as the server reads it, when it is one the contract accepts (for the same-key-same-id check). */
export function validKeyOf(c: FuzzCase): string | undefined {
  const k = c.headers.idempotencyKey;
  if (k === null || c.headers.keyTwice) return undefined;
  return /^[\x21-\x7e]{1,255}$/.test(k) ? k : undefined;
}
