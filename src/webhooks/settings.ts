/**
 * Webhook settings as the config module hands them over, and the parsing of
 * CLAWFLEET_WEBHOOK_SECRETS. Secrets are held as written (`whsec_…`) and never
 * logged; error messages name a secret's id, never its value.
 *
 * Every secret belongs to one tenant: `<id>` to the operator's (`default`),
 * `<tenant>:<id>` to that tenant. A task's deliveries are signed only with a
 * secret of its own tenant, named by its id within that tenant.
 */
import { DEFAULT_TENANT, TenantSchema, WebhookSecretIdSchema } from "../contracts";
import { secretKey } from "./signature";

export interface WebhookSettings {
  /** CLAWFLEET_WEBHOOK_SECRETS: secrets by key (`<id>` for the operator's tenant, `<tenant>:<id>`). @default {} (a submit with a webhook is then refused) */
  readonly secrets: Readonly<Record<string, string>>;
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
      .map((pair, i) => {
        const at = pair.indexOf("=");
        // The entry may be a secret without its id: nothing of it is repeated.
        if (at <= 0) throw new Error(`entry ${i + 1} is not an id=whsec_… pair (no id before '=')`);
        return [pair.slice(0, at), pair.slice(at + 1)];
      });
  }
  const out: Record<string, string> = {};
  for (const [i, [key, secret]] of entries.entries()) {
    const name = secretNameOf(key);
    // What stands where an id should may be a secret (an id left out, a base64 '=' read as the separator):
    // an entry that is no id is named by its place, never by its text.
    if (name === undefined || name.id.startsWith("whsec_")) {
      throw new Error(`entry ${i + 1}: the secret's id must be letters, digits, '_', '.' and '-' (at most 64), with an optional "<tenant>:" before it`);
    }
    const id = secretKeyOf(name.tenant, name.id);
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

/** A configured secret's key split into its tenant and its id within the tenant; undefined when it is neither. */
function secretNameOf(key: string): { tenant: string; id: string } | undefined {
  const colon = key.indexOf(":");
  const tenant = colon < 0 ? DEFAULT_TENANT : key.slice(0, colon);
  const id = key.slice(colon + 1);
  if (!TenantSchema.safeParse(tenant).success || !WebhookSecretIdSchema.safeParse(id).success) return undefined;
  return { tenant, id };
}

/** The key under which `tenant`'s secret `id` is configured. */
export function secretKeyOf(tenant: string, id: string): string {
  return tenant === DEFAULT_TENANT ? id : `${tenant}:${id}`;
}

/** The ids of `tenant`'s own secrets, as the tenant names them. */
export function secretIdsOf(secrets: Readonly<Record<string, string>>, tenant: string = DEFAULT_TENANT): string[] {
  return Object.keys(secrets).flatMap((key) => {
    const name = secretNameOf(key);
    return name !== undefined && name.tenant === tenant ? [name.id] : [];
  });
}

/** The secret a tenant's webhook without `secret_id` is signed with: its `default`, else its only secret. */
export function defaultSecretIdOf(secrets: Readonly<Record<string, string>>, tenant: string = DEFAULT_TENANT): string | undefined {
  const ids = secretIdsOf(secrets, tenant);
  if (ids.includes("default")) return "default";
  return ids.length === 1 ? ids[0] : undefined;
}

/** `tenant`'s secret `id`; undefined when that tenant has no such secret (another tenant's is never one). */
export function tenantSecret(secrets: Readonly<Record<string, string>>, tenant: string, id: string): string | undefined {
  // An id naming a tenant of its own ("acme:billing") would reach into that tenant's secrets.
  if (!WebhookSecretIdSchema.safeParse(id).success) return undefined;
  const key = secretKeyOf(tenant, id);
  return Object.hasOwn(secrets, key) ? secrets[key] : undefined;
}
