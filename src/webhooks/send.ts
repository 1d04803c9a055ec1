/**
 * One delivery attempt over HTTP(S): a POST to the address the guard checked
 * (a per-request Agent whose `lookup` answers only that address), redirects
 * never followed, a connect timeout and a total one. The answer's body is read
 * up to a small bound and dropped: only the status code matters.
 */
import http from "node:http";
import https from "node:https";
import { messageOf } from "../errors";
import { pinnedLookup, type CheckedTarget } from "./ssrf";

export interface SendOptions {
  /** The whole attempt: connect, send, the answer. */
  timeoutMs: number;
  /** TCP (and TLS) connect within the attempt. */
  connectTimeoutMs: number;
  /** Aborts the attempt (a node shutting down). */
  signal?: AbortSignal;
}

export interface SendOutcome {
  /** 2xx. */
  delivered: boolean;
  statusCode: number | null;
  /** Why it was not delivered, when the status code alone does not say. */
  error: string | null;
  durationMs: number;
}

/** Bytes of an answer read before the connection is dropped. */
const MAX_ANSWER_BYTES = 64 * 1024;

export function postWebhook(target: CheckedTarget, headers: Record<string, string>, body: string, opts: SendOptions): Promise<SendOutcome> {
  const started = performance.now();
  const https_ = target.url.protocol === "https:";
  const lookup = pinnedLookup(target);
  // A fresh agent per attempt: no pooled socket of another address is ever reused, and its lookup is the pin.
  const agent = https_ ? new https.Agent({ keepAlive: false, lookup }) : new http.Agent({ keepAlive: false, lookup });
  const payload = Buffer.from(body, "utf8");
  return new Promise<SendOutcome>((resolve) => {
    let settled = false;
    const finish = (o: Omit<SendOutcome, "durationMs">) => {
      if (settled) return;
      settled = true;
      clearTimeout(total);
      clearTimeout(connect);
      opts.signal?.removeEventListener("abort", onAbort);
      agent.destroy();
      resolve({ ...o, durationMs: Math.round(performance.now() - started) });
    };
    const fail = (error: string) => {
      finish({ delivered: false, statusCode: null, error });
      req.destroy();
    };
    const req = (https_ ? https : http).request({
      method: "POST",
      protocol: target.url.protocol,
      hostname: target.host,
      port: target.url.port === "" ? undefined : Number(target.url.port),
      path: `${target.url.pathname}${target.url.search}`,
      agent,
      // Node connects to an IP literal itself; for a name, the agent's lookup answers the pinned address.
      lookup,
      headers: {
        ...headers,
        "content-type": "application/json",
        "content-length": String(payload.length),
        "user-agent": "clawfleet-webhooks",
      },
    });
    const total = setTimeout(() => fail(`timed out after ${opts.timeoutMs} ms`), opts.timeoutMs);
    const connect = setTimeout(() => fail(`could not connect within ${opts.connectTimeoutMs} ms`), opts.connectTimeoutMs);
    const onAbort = () => fail("aborted: the delivering node is stopping");
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    req.on("socket", (socket) => {
      socket.once(https_ ? "secureConnect" : "connect", () => clearTimeout(connect));
    });
    req.on("error", (err) => fail(describe(err)));
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      let read = 0;
      const done = () => {
        const ok = status >= 200 && status < 300;
        const redirect = status >= 300 && status < 400;
        finish({ delivered: ok, statusCode: status, error: redirect ? `redirect (${status}) not followed` : null });
        res.destroy();
      };
      res.on("data", (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_ANSWER_BYTES) done();
      });
      res.on("end", done);
      res.on("error", done);
      res.on("close", done);
    });
    req.end(payload);
  });
}

/** A connection error as the task's attempt list shows it: the code and what it means, no stack. */
function describe(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const msg = messageOf(err).slice(0, 300);
  return typeof code === "string" && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
