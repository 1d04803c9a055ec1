/**
 * The REST gateway's HTTP edge, apart from moleculer-web: what a request tells
 * besides its body (idempotency key, trace parent), the refusal of a body that is
 * not JSON, and how an error leaves (the one error body of views.ts, as JSON).
 */
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { messageOf } from "../errors";
import type { Logger } from "../logging";
import { httpError } from "./views";

/**
 * How long an idle kept-alive connection stays open: longer than the idle timeouts of clients and load
 * balancers (60 s for most), so that it is they who close one, never the API just as a request is sent
 * on it (that request would fail with a reset, its sender not knowing whether it was taken). Node's
 * default is 5 s. A stopping API does not wait that long: see `KeptConnections.drain`.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** How often a draining server closes the connections that have gone idle. */
const DRAIN_SWEEP_MS = 100;

export interface KeptConnections {
  /**
   * For a stopping server, before its `close()`: every answer from now on closes its connection, and
   * connections are closed as soon as they are idle, so the close waits for the requests in flight, not
   * for kept-alive connections to time out.
   */
  drain(): void;
}

/** Keeps the API server's idle connections KEEP_ALIVE_TIMEOUT_MS, until `drain()`. */
export function keepConnections(server: Server): KeptConnections {
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  let draining = false;
  return {
    drain() {
      if (draining) return;
      draining = true;
      // Before the router's own listener: the answer is not written yet.
      server.prependListener("request", (_req: IncomingMessage, res: ServerResponse) => {
        res.shouldKeepAlive = false;
      });
      server.closeIdleConnections();
      // A request in flight now ends with its connection kept: closed once idle.
      const sweep = setInterval(() => server.closeIdleConnections(), DRAIN_SWEEP_MS);
      sweep.unref();
      server.once("close", () => clearInterval(sweep));
    },
  };
}

/** What the API keeps from a request's headers for the action it calls. */
export interface RequestHints {
  idempotencyKey?: string;
  /** The request's W3C `traceparent` header: the parent of the task's root span. */
  httpTraceparent?: string;
  /** `Last-Event-ID`: where a reconnecting event stream resumes. */
  lastEventId?: string;
}

export function requestHints(req: IncomingMessage): RequestHints {
  const hints: RequestHints = {};
  const key = req.headers["idempotency-key"];
  if (typeof key === "string") hints.idempotencyKey = key;
  const traceparent = req.headers.traceparent;
  if (typeof traceparent === "string") hints.httpTraceparent = traceparent;
  const lastEventId = req.headers["last-event-id"];
  if (typeof lastEventId === "string") hints.lastEventId = lastEventId;
  return hints;
}

/** A POST with a body must say it is JSON; otherwise a 400 (as body-parser's own parse failure), never a guess. */
export function refuseNonJson(req: IncomingMessage): void {
  const type = req.headers["content-type"] ?? "";
  const length = Number(req.headers["content-length"] ?? 0);
  if (req.method === "POST" && length > 0 && !/^application\/(.+\+)?json\b/i.test(type)) {
    throw Object.assign(new Error("send the body as JSON with Content-Type: application/json"), { status: 400, type: "entity.parse.failed" });
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(payload), ...headers });
  res.end(payload);
}

/** Answers any error as `{"error": {type, message, details?}}`; a server-side one (not a 503) is logged with its cause. */
export function sendError(logger: Pick<Logger, "error">, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  const { status, body, headers } = httpError(err);
  if (status >= 500 && status !== 503) {
    logger.error({ event: "http.error", method: req.method, url: req.url, err: messageOf(err), stack: (err as Error).stack }, "request failed");
  }
  sendJson(res, status, body, headers);
}

/**
 * Bytes Node's HTTP parser refuses before any route sees them (a head past `maxHeaderSize`, a request
 * target with raw non-ASCII bytes, a malformed request after the body): answered with the contract's JSON
 * error body, where Node's default is a bare 400 with none. A connection already gone is just closed.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  // Node's parser reports an error again for every later chunk of the same connection: answer once.
  if (answered.has(socket)) return;
  answered.add(socket);
  if (err.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, type, message] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [431, "headers_too_large", "the request's headers are too large (16 KiB at most)"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "request_timeout", "the request was not received in time"]
        : [400, "malformed_request", "the request is not valid HTTP/1.1"];
  const body = JSON.stringify({ error: { type, message } });
  // A lingering close: what the client is still sending (a large body behind a broken head) is read and
  // dropped, so its arrival does not reset the connection before the client has read the answer. The
  // connection closes once the client stops sending (idle), or after a total bound, whichever comes first.
  // The HTTP parser's own listener goes: what follows is not parsed again, only read and dropped.
  socket.removeAllListeners("data");
  let idle = setTimeout(() => socket.destroy(), LINGER_IDLE_MS).unref();
  const bound = setTimeout(() => socket.destroy(), LINGER_TOTAL_MS).unref();
  socket.on("data", () => {
    clearTimeout(idle);
    idle = setTimeout(() => socket.destroy(), LINGER_IDLE_MS).unref();
  });
  socket.once("close", () => {
    clearTimeout(idle);
    clearTimeout(bound);
  });
  socket.resume();
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Connections already answered by `answerClientError`. */
const answered = new WeakSet<Duplex>();

/** A refused connection is drained until its client has been silent this long... */
const LINGER_IDLE_MS = 5_000;
/** ...and for this long at most. */
const LINGER_TOTAL_MS = 30_000;
