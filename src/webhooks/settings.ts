/**
 * Webhook settings as the config module hands them over, and the parsing of
 * CLAWFLEET_WEBHOOK_SECRETS. Secrets are held as written (`whsec_…`) and never
 * logged; error messages name a secret's id, never its value.
 */
import { WebhookSecretIdSchema } from "../contracts";
import { secretKey } from "./signature";

export interface WebhookSettings {
  /** CLAWFLEET_WEBHOOK_SECRETS: secrets by id. @default {} (a submit with a webhook is then refused) */
  readonly secrets: Readonly<Record<string, string>>;
  /** The id a webhook without `secret_id` is signed with: `default`, else the only secret; undefined when neither exists. */
  readonly defaultSecretId: string | undefined;
  /** CLAWFLEET_WEBHOOK_ALLOW_PRIVATE=1: private, loopback, link-local, ULA and CGNAT addresses are allowed. @default false */
  readonly allowPrivate: boolean;
  /** One attempt's whole budget: connect, send, the answer. @default 10000 */
  readonly timeoutMs: number;
  /** Connecting (TCP and TLS) within the attempt's budget. @default 3000 */
  readonly connectTimeoutMs: number;
  /** How often a delivery loop looks for due deliveries. @default 1000 */
  readonly pollMs: number;
  /** The wait after a failed attempt: `baseMs`, doubling per attempt, at most `maxMs`. @default 1000, 600000 */
  readonly retry: { readonly baseMs: number; readonly maxMs: number };
  /** Attempts before a delivery gives up. @default 150 */
  readonly maxAttempts: number;
  /** Age of an event past which no attempt is made (counted from the task's end). @default 86400000 (24 h) */
  readonly maxAgeMs: number;
}

/**
 * CLAWFLEET_WEBHOOK_SECRETS: a JSON object `{"<id>": "whsec_…"}` or a list `<id>=whsec_…` separated by
 * commas, spaces or new lines. Throws with a message naming the offending id.
 */
export function parseWebhookSecrets(text: string): Record<string, string> {
  const trimmed = text.trim();
  let entries: [string, unknown][];
  if (trimmed === "") return {};
  if (trimmed.startsWith("{")) {
    let raw: unknown;
    try {
      raw = JSON.parse(trimmed);
    } catch {
      throw new Error("is neither a JSON object of secrets nor a list of id=whsec_… pairs (the JSON does not parse)");
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error("must be a JSON object of secrets by id");
    entries = Object.entries(raw);
  } else {
    entries = trimmed
      .split(/[\s,]+/)
      .filter((s) => s !== "")
      .map((pair) => {
        const at = pair.indexOf("=");
        if (at <= 0) throw new Error(`"${pair.slice(0, 20)}…" is not an id=whsec_… pair`);
        return [pair.slice(0, at), pair.slice(at + 1)];
      });
  }
  const out: Record<string, string> = {};
  for (const [id, secret] of entries) {
    if (!WebhookSecretIdSchema.safeParse(id).success) throw new Error(`secret id "${id.slice(0, 64)}" is not letters, digits, '_', '.' and '-' (at most 64)`);
    if (Object.hasOwn(out, id)) throw new Error(`secret id "${id}" is given twice`);
    if (typeof secret !== "string") throw new Error(`secret "${id}" is not a string`);
    try {
      secretKey(secret);
    } catch (err) {
      throw new Error(`secret "${id}": ${(err as Error).message}`);
    }
    out[id] = secret;
  }
  return out;
}

/** `default` when configured, else the only secret. */
export function defaultSecretIdOf(secrets: Readonly<Record<string, string>>): string | undefined {
  const ids = Object.keys(secrets);
  if (ids.includes("default")) return "default";
  return ids.length === 1 ? ids[0] : undefined;
}
