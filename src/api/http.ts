/**
 * The REST gateway's HTTP edge, apart from moleculer-web: what a request tells
 * besides its body (idempotency key, trace parent), the refusal of a body that is
 * not JSON, and how an error leaves (the one error body of views.ts, as JSON).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { messageOf } from "../errors";
import type { Logger } from "../logging";
import { httpError } from "./views";

/** What the API keeps from a request's headers for the action it calls. */
export interface RequestHints {
  idempotencyKey?: string;
  /** The request's W3C `traceparent` header: the parent of the task's root span. */
  httpTraceparent?: string;
}

export function requestHints(req: IncomingMessage): RequestHints {
  const hints: RequestHints = {};
  const key = req.headers["idempotency-key"];
  if (typeof key === "string") hints.idempotencyKey = key;
  const traceparent = req.headers.traceparent;
  if (typeof traceparent === "string") hints.httpTraceparent = traceparent;
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
