/**
 * auth - the key format, verification and its cache, and the configuration
 * defaults (off embedded, on distributed), without a cluster.
 */
import { describe, expect, it } from "vitest";
import { issueKey, KeyVerifier, parseKey } from "../../src/auth";
import { loadConfig } from "../../src/config";
import type { ApiKeyRecord } from "../../src/contracts";
import { ConfigError, UnauthenticatedError } from "../../src/errors";

const ADMIN = "a-bootstrap-secret-of-32-characters!";

function storeWith(record: (k: ReturnType<typeof issueKey>) => Partial<ApiKeyRecord> = () => ({})) {
  const issued = issueKey();
  const calls = { findKey: 0 };
  const row: ApiKeyRecord = {
    id: issued.id,
    tenant: "acme",
    scopes: ["read"],
    secret_hash: issued.secretHash,
    created_at: new Date(0).toISOString(),
    expires_at: null,
    revoked_at: null,
    ...record(issued),
  };
  const findKey = async (id: string) => {
    calls.findKey += 1;
    return id === row.id ? row : null;
  };
  return { issued, row, calls, findKey };
}

describe("auth - key format", () => {
  it("issues cfk_<16 hex>_<43 base64url> keys whose parts parse back, and hashes only the secret", () => {
    const k = issueKey();
    expect(k.key).toMatch(/^cfk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    const parsed = parseKey(k.key);
    expect(parsed?.id).toBe(k.id);
    expect(k.secretHash).toMatch(/^[0-9a-f]{64}$/);
    expect(k.secretHash).not.toContain(parsed?.secret ?? "x");
    expect(issueKey().key).not.toBe(k.key);
    for (const bad of ["", "cfk_", `cfk_${k.id}`, `cfk_${k.id.toUpperCase()}_${"a".repeat(43)}`, `xfk_${k.id}_${"a".repeat(43)}`]) expect(parseKey(bad)).toBeUndefined();
  });
});

describe("auth - verification", () => {
  it("accepts a stored key and answers its tenant and scopes", async () => {
    const s = storeWith();
    const v = new KeyVerifier(s.findKey, { enabled: true });
    expect(await v.authenticate(`Bearer ${s.issued.key}`)).toEqual({ tenant: "acme", scopes: ["read"], keyId: s.issued.id });
  });

  it("refuses a missing header, a wrong secret, an unknown id, a revoked and an expired key with UnauthenticatedError", async () => {
    const s = storeWith();
    const v = new KeyVerifier(s.findKey, { enabled: true });
    const wrong = `cfk_${s.issued.id}_${"B".repeat(43)}`;
    const unknown = `cfk_${"1".repeat(16)}_${s.issued.key.slice(21)}`;
    for (const h of [undefined, "", "Bearer", `Basic ${s.issued.key}`, `Bearer ${wrong}`, `Bearer ${unknown}`]) {
      await expect(v.authenticate(h)).rejects.toBeInstanceOf(UnauthenticatedError);
    }
    const revoked = storeWith(() => ({ revoked_at: new Date().toISOString() }));
    await expect(new KeyVerifier(revoked.findKey, { enabled: true }).authenticate(`Bearer ${revoked.issued.key}`)).rejects.toBeInstanceOf(UnauthenticatedError);
    const expired = storeWith(() => ({ expires_at: new Date(Date.now() - 1000).toISOString() }));
    await expect(new KeyVerifier(expired.findKey, { enabled: true }).authenticate(`Bearer ${expired.issued.key}`)).rejects.toBeInstanceOf(UnauthenticatedError);
  });

  it("caches verdicts for the TTL: many requests, concurrent or not, cost one look-up; after the TTL, one more", async () => {
    let clock = 1_000_000;
    const s = storeWith();
    const v = new KeyVerifier(s.findKey, { enabled: true, ttlMs: 5_000, now: () => clock });
    await Promise.all(Array.from({ length: 20 }, () => v.authenticate(`Bearer ${s.issued.key}`)));
    clock += 4_000;
    await v.authenticate(`Bearer ${s.issued.key}`);
    expect(s.calls.findKey).toBe(1);
    clock += 1_000;
    await v.authenticate(`Bearer ${s.issued.key}`);
    expect(s.calls.findKey).toBe(2);
  });

  it("never serves a cached verdict past the key's expiry, and forgets a key on demand", async () => {
    let clock = Date.parse("2030-01-01T00:00:00Z");
    const s = storeWith(() => ({ expires_at: new Date(clock + 1_000).toISOString() }));
    const v = new KeyVerifier(s.findKey, { enabled: true, ttlMs: 5_000, now: () => clock });
    await v.authenticate(`Bearer ${s.issued.key}`);
    clock += 1_000;
    await expect(v.authenticate(`Bearer ${s.issued.key}`)).rejects.toBeInstanceOf(UnauthenticatedError);

    const r = storeWith();
    const w = new KeyVerifier(r.findKey, { enabled: true, ttlMs: 5_000 });
    await w.authenticate(`Bearer ${r.issued.key}`);
    r.row.revoked_at = new Date().toISOString();
    await w.authenticate(`Bearer ${r.issued.key}`); // cached within the TTL
    w.forget(r.issued.id);
    await expect(w.authenticate(`Bearer ${r.issued.key}`)).rejects.toBeInstanceOf(UnauthenticatedError);
  });

  it("the bootstrap secret is an admin of tenant default; with authentication off everyone is default with every scope", async () => {
    const s = storeWith();
    const v = new KeyVerifier(s.findKey, { enabled: true, adminKey: ADMIN });
    expect(await v.authenticate(`Bearer ${ADMIN}`)).toEqual({ tenant: "default", scopes: ["admin"], keyId: "bootstrap" });
    await expect(v.authenticate(`Bearer ${ADMIN}x`)).rejects.toBeInstanceOf(UnauthenticatedError);
    const off = new KeyVerifier(s.findKey, { enabled: false });
    expect(await off.authenticate(undefined)).toEqual({ tenant: "default", scopes: ["submit", "read", "operate", "admin"], keyId: "anonymous" });
    expect(s.calls.findKey).toBe(0);
  });
});

describe("auth - configuration", () => {
  const distributed = { TRANSPORTER: "nats://h:4222", REDIS_URL: "redis://h:6379", DATABASE_URL: "postgres://h/db" };

  it("is off by default in embedded mode and on by default in distributed mode; CLAWFLEET_AUTH decides either way", () => {
    expect(loadConfig({}).auth).toEqual({ enabled: false, adminKey: undefined });
    expect(loadConfig(distributed).auth.enabled).toBe(true);
    expect(loadConfig({ ...distributed, CLAWFLEET_AUTH: "off" }).auth.enabled).toBe(false);
    expect(loadConfig({ CLAWFLEET_AUTH: "on", CLAWFLEET_ADMIN_KEY: ADMIN }).auth).toEqual({ enabled: true, adminKey: ADMIN });
    expect(() => loadConfig({ CLAWFLEET_AUTH: "yes" })).toThrow(ConfigError);
  });

  it("refuses a short admin key without repeating it", () => {
    const short = "tooshort-secret";
    let err: unknown;
    try {
      loadConfig({ CLAWFLEET_ADMIN_KEY: short });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/CLAWFLEET_ADMIN_KEY/);
    expect((err as Error).message).not.toContain(short);
  });
});
