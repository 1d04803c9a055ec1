/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): a secret is
 * `whsec_<base64>`; a delivery carries `webhook-id`, `webhook-timestamp` (Unix
 * seconds of the attempt) and `webhook-signature: v1,<base64 HMAC-SHA256 of
 * "{id}.{timestamp}.{body}">`. `verifyWebhook` is what a receiver runs.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const SECRET_PREFIX = "whsec_";
/** The spec's bounds on a secret's length, in bytes. */
export const SECRET_MIN_BYTES = 24;
export const SECRET_MAX_BYTES = 64;
/** How far a receiver accepts `webhook-timestamp` from its own clock, as the spec's libraries do. */
export const DEFAULT_TOLERANCE_S = 5 * 60;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The key of a `whsec_…` secret; throws with a reason (never the secret) when it is not one. */
export function secretKey(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error(`a webhook secret starts with "${SECRET_PREFIX}"`);
  const b64 = secret.slice(SECRET_PREFIX.length);
  if (!BASE64.test(b64)) throw new Error(`a webhook secret is "${SECRET_PREFIX}" followed by standard base64`);
  const key = Buffer.from(b64, "base64");
  if (key.length < SECRET_MIN_BYTES || key.length > SECRET_MAX_BYTES) {
    throw new Error(`a webhook secret holds ${SECRET_MIN_BYTES} to ${SECRET_MAX_BYTES} bytes (it holds ${key.length})`);
  }
  return key;
}

/** The `webhook-signature` value for one attempt. */
export function signWebhook(key: Buffer, id: string, timestampS: number, body: string): string {
  const mac = createHmac("sha256", key).update(`${id}.${timestampS}.${body}`, "utf8").digest("base64");
  return `v1,${mac}`;
}

/** The three headers of one attempt; the timestamp is the attempt's, so a replay is told apart. */
export function webhookHeaders(key: Buffer, id: string, body: string, nowMs: number = Date.now()): Record<string, string> {
  const timestamp = Math.floor(nowMs / 1000);
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signWebhook(key, id, timestamp, body),
  };
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

/**
 * A receiver's check: the headers are present, the timestamp is within `toleranceS` of `nowMs`, and one
 * of the space-separated `v1,` signatures matches (compared in constant time).
 */
export function verifyWebhook(
  key: Buffer,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  body: string,
  opts: { nowMs?: number; toleranceS?: number } = {},
): VerifyResult {
  const header = (name: string) => {
    const v = headers[name] ?? headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  };
  const id = header("webhook-id");
  const ts = header("webhook-timestamp");
  const sigs = header("webhook-signature");
  if (!id || !ts || !sigs) return { ok: false, reason: "missing webhook-id, webhook-timestamp or webhook-signature" };
  if (!/^\d{1,12}$/.test(ts)) return { ok: false, reason: "webhook-timestamp is not Unix seconds" };
  const now = Math.floor((opts.nowMs ?? Date.now()) / 1000);
  if (Math.abs(now - Number(ts)) > (opts.toleranceS ?? DEFAULT_TOLERANCE_S)) return { ok: false, reason: "webhook-timestamp is outside the tolerance" };
  const expected = Buffer.from(signWebhook(key, id, Number(ts), body).slice(3));
  for (const versioned of sigs.split(" ")) {
    const [version, sig] = versioned.split(",", 2);
    if (version !== "v1" || sig === undefined) continue;
    const given = Buffer.from(sig);
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true };
  }
  return { ok: false, reason: "no matching signature" };
}
