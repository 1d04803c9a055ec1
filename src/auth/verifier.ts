/**
 * Who a REST request is: the `Authorization: Bearer <key>` header checked
 * against the stored keys (through the checkpoint role, so an api process
 * needs no database) or the bootstrap admin secret (CLAWFLEET_ADMIN_KEY).
 *
 * Verdicts are cached in the api process for `ttlMs` (5 s), keyed by the
 * sha-256 of the whole header value, so a busy client costs one store read
 * per TTL, and concurrent first requests share it. Consequence, documented in
 * the README: a key revoked through another api process keeps working there
 * for up to the TTL. Expiry is exact: a cached verdict never outlives the
 * key's `expires_at`.
 */
import { timingSafeEqual } from "node:crypto";
import { DEFAULT_TENANT, SCOPES, type ApiKeyRecord, type Scope } from "../contracts";
import { ForbiddenError, UnauthenticatedError } from "../errors";
import { parseKey, secretMatches, sha256 } from "./keys";

export interface Principal {
  tenant: string;
  scopes: readonly Scope[];
  /** The key's id; `bootstrap` for CLAWFLEET_ADMIN_KEY, `anonymous` with authentication off. */
  keyId: string;
}

export interface VerifierOptions {
  /** Off: every request is tenant `default` with every scope. */
  enabled: boolean;
  adminKey?: string | undefined;
  /** How long a verdict is reused. @default 5000 */
  ttlMs?: number;
  /** Verdicts kept at most; the oldest go first. @default 10000 */
  maxEntries?: number;
  /** @default Date.now */
  now?: () => number;
}

export const AUTH_CACHE_TTL_MS = 5_000;

const ANONYMOUS: Principal = { tenant: DEFAULT_TENANT, scopes: SCOPES, keyId: "anonymous" };
const BOOTSTRAP: Principal = { tenant: DEFAULT_TENANT, scopes: ["admin"], keyId: "bootstrap" };

/** Stands in for a missing row, so an unknown key id costs the same hashing and comparison as a wrong secret. */
const NO_HASH = "0".repeat(64);

interface Verdict {
  principal: Principal | undefined;
  until: number;
}

interface Entry {
  pending: Promise<Verdict>;
  /** Set once `pending` settles. */
  verdict?: Verdict;
}

const invalid = () => new UnauthenticatedError("the API key is not valid (unknown, expired or revoked)");

export class KeyVerifier {
  private readonly cache = new Map<string, Entry>();
  private readonly adminHash: Buffer | undefined;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly findKey: (id: string) => Promise<ApiKeyRecord | null>,
    private readonly opts: VerifierOptions,
  ) {
    this.adminHash = opts.adminKey !== undefined ? sha256(opts.adminKey) : undefined;
    this.ttlMs = opts.ttlMs ?? AUTH_CACHE_TTL_MS;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.opts.enabled;
  }

  /** The caller of a request with this `Authorization` header; UnauthenticatedError when there is none valid. */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    if (!this.opts.enabled) return ANONYMOUS;
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? "");
    const token = m?.[1];
    if (token === undefined) throw new UnauthenticatedError("send an API key: Authorization: Bearer <key>");
    const cacheKey = sha256(token).toString("hex");
    const now = this.now();
    let entry = this.cache.get(cacheKey);
    if (entry === undefined || (entry.verdict !== undefined && entry.verdict.until <= now)) entry = this.remember(cacheKey, this.verify(token, now));
    const verdict = await entry.pending;
    if (verdict.principal === undefined) throw invalid();
    return verdict.principal;
  }

  /** Drops what this process remembers of a key (and every look-up in flight): a revocation made here takes effect here at once. */
  forget(keyId: string): void {
    for (const [k, e] of this.cache) if (e.verdict === undefined || e.verdict.principal?.keyId === keyId) this.cache.delete(k);
  }

  private remember(cacheKey: string, pending: Promise<Verdict>): Entry {
    this.cache.delete(cacheKey);
    while (this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
    const entry: Entry = { pending };
    this.cache.set(cacheKey, entry);
    void pending.then(
      (v) => (entry.verdict = v),
      // A failed look-up (store unavailable) is not a verdict: the next request asks again.
      () => {
        if (this.cache.get(cacheKey) === entry) this.cache.delete(cacheKey);
      },
    );
    return entry;
  }

  private async verify(token: string, now: number): Promise<Verdict> {
    const until = now + this.ttlMs;
    if (this.adminHash !== undefined && timingSafeEqual(sha256(token), this.adminHash)) return { principal: BOOTSTRAP, until };
    const parsed = parseKey(token);
    const row = parsed === undefined ? null : await this.findKey(parsed.id);
    const matches = secretMatches(parsed?.secret ?? token, row?.secret_hash ?? NO_HASH);
    if (row === null || !matches || row.revoked_at !== null) return { principal: undefined, until };
    const expires = row.expires_at === null ? Infinity : Date.parse(row.expires_at);
    if (expires <= now) return { principal: undefined, until };
    return { principal: { tenant: row.tenant, scopes: row.scopes, keyId: row.id }, until: Math.min(until, expires) };
  }
}

/** The route's scope, or ForbiddenError naming it. */
export function requireScope(principal: Principal, scope: Scope): void {
  if (!principal.scopes.includes(scope)) throw new ForbiddenError(`this API key lacks the "${scope}" scope`, { scope });
}

/** A route that changes every tenant's work (a kill switch, a canary) takes a key of the operator's tenant. */
export function requireOperatorTenant(principal: Principal): void {
  if (principal.tenant !== DEFAULT_TENANT) {
    throw new ForbiddenError(`this acts on or shows the work of every tenant: only a key of the operator's tenant "${DEFAULT_TENANT}" may do it`, { tenant: principal.tenant });
  }
}
