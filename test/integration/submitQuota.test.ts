/**
 * submit quota - the per-tenant submit rate: the same bucket contract for the
 * memory buckets (embedded) and the Redis buckets (shared by every intake of a
 * cluster, on a real Redis with a prefix of its own), the 429 intake raises, and
 * the quota settings as src/config.ts reads them.
 */
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { RateLimitedError } from "../../src/errors";
import { MemorySubmitBuckets, RedisSubmitBuckets, SubmitQuota, TenantQuotas, type SubmitBuckets } from "../../src/tenancy";
import { cleanRedis, hasService, REDIS_TEST_URL, uniqueId } from "../helpers/services";

async function takes(buckets: SubmitBuckets, tenant: string, n: number, limit = { ratePerSec: 2, burst: 3 }) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await buckets.take(tenant, limit));
  return out;
}

function bucketContract(make: () => SubmitBuckets): void {
  it("admits a full burst at once, then refuses with the wait until the next token", async () => {
    const buckets = make();
    const out = await takes(buckets, "tenant-a", 4);
    expect(out.map((o) => o.admitted)).toEqual([true, true, true, false]);
    // 2 per second: the next token is at most 500 ms away.
    expect(out[3]?.waitMs).toBeGreaterThan(0);
    expect(out[3]?.waitMs).toBeLessThanOrEqual(500);
  });

  it("keeps one bucket per tenant", async () => {
    const buckets = make();
    await takes(buckets, "tenant-a", 3);
    expect((await buckets.take("tenant-a", { ratePerSec: 2, burst: 3 })).admitted).toBe(false);
    expect((await buckets.take("tenant-b", { ratePerSec: 2, burst: 3 })).admitted).toBe(true);
  });

  it("refills at the rate", async () => {
    const buckets = make();
    await takes(buckets, "tenant-a", 1, { ratePerSec: 20, burst: 1 });
    expect((await buckets.take("tenant-a", { ratePerSec: 20, burst: 1 })).admitted).toBe(false);
    await new Promise((r) => setTimeout(r, 80));
    expect((await buckets.take("tenant-a", { ratePerSec: 20, burst: 1 })).admitted).toBe(true);
  });
}

describe("submit quota - memory buckets", () => {
  bucketContract(() => new MemorySubmitBuckets());
});

describe.skipIf(!hasService("redis"))("submit quota - redis buckets", () => {
  const prefix = uniqueId("submitq");
  const connections: Redis[] = [];
  const connect = () => {
    const r = new Redis(REDIS_TEST_URL);
    connections.push(r);
    return r;
  };
  afterAll(async () => {
    for (const r of connections) r.disconnect();
    await cleanRedis(REDIS_TEST_URL, prefix);
  });

  // A fresh prefix per bucket set: the contract's tests must not share buckets.
  bucketContract(() => new RedisSubmitBuckets(connect(), { prefix: `${prefix}:${uniqueId("b")}` }));

  it("one bucket for every intake: two connections (two intakes) together get one burst", async () => {
    const shared = `${prefix}:shared`;
    const a = new RedisSubmitBuckets(connect(), { prefix: shared });
    const b = new RedisSubmitBuckets(connect(), { prefix: shared });
    const limit = { ratePerSec: 0.5, burst: 4 };
    const out = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).take("tenant-a", limit)));
    expect(out.filter((o) => o.admitted)).toHaveLength(4);
    // The hash expires once it would be full again: no key outlives its use.
    const ttl = await connections[0]?.pttl(a.key("tenant-a"));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(8_000 + 1_000);
  });
});

describe("submit quota - intake's gate", () => {
  it("over the rate: RateLimitedError (429, retryable) with retryAfter in whole seconds, rounded up", async () => {
    const quota = new SubmitQuota(new TenantQuotas({ maxRunning: null, submitRate: 0.4, submitBurst: 1, tenants: {} }), new MemorySubmitBuckets());
    await quota.admit("tenant-a");
    const err = await quota.admit("tenant-a").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RateLimitedError);
    const e = err as RateLimitedError;
    expect(e.code).toBe(429);
    expect(e.retryable).toBe(true);
    // 0.4 per second: 2.5 s to the next token, answered as 3.
    expect(e.data).toMatchObject({ tenant: "tenant-a", limit: "submit_rate", retryAfter: 3 });
  });

  it("per-tenant overrides: a null lifts the default rate, a number replaces it", async () => {
    const quotas = new TenantQuotas({ maxRunning: 4, submitRate: 1, submitBurst: 2, tenants: { vip: { submit_rate: null, max_running: null }, small: { submit_rate: 5 } } });
    expect(quotas.submitLimit("anyone")).toEqual({ ratePerSec: 1, burst: 2 });
    expect(quotas.submitLimit("vip")).toBeNull();
    expect(quotas.submitLimit("small")).toEqual({ ratePerSec: 5, burst: 5 });
    expect(quotas.runningCaps()).toEqual({ default: 4, tenants: { vip: null } });
    expect(quotas.maxRunning("vip")).toBeNull();
    expect(quotas.maxRunning("small")).toBe(4);
  });
});

describe("submit quota - configuration", () => {
  it("is off by default", () => {
    expect(loadConfig({}).tenants).toEqual({ maxRunning: null, submitRate: null, submitBurst: null, tenants: {} });
    expect(new TenantQuotas(loadConfig({}).tenants).limitsSubmits()).toBe(false);
  });

  it("reads the defaults and the per-tenant overrides", () => {
    const c = loadConfig({
      CLAWFLEET_TENANT_MAX_RUNNING: "5",
      CLAWFLEET_TENANT_SUBMIT_RATE: "2.5",
      CLAWFLEET_TENANT_SUBMIT_BURST: "10",
      CLAWFLEET_TENANT_QUOTAS: '{"tenantA":{"max_running":2,"submit_rate":10}}',
    });
    expect(c.tenants).toEqual({ maxRunning: 5, submitRate: 2.5, submitBurst: 10, tenants: { tenantA: { max_running: 2, submit_rate: 10 } } });
  });

  it.each([
    [{ CLAWFLEET_TENANT_MAX_RUNNING: "-1" }, "CLAWFLEET_TENANT_MAX_RUNNING"],
    [{ CLAWFLEET_TENANT_SUBMIT_RATE: "fast" }, "CLAWFLEET_TENANT_SUBMIT_RATE"],
    [{ CLAWFLEET_TENANT_SUBMIT_BURST: "3" }, "CLAWFLEET_TENANT_SUBMIT_BURST"],
    [{ CLAWFLEET_TENANT_QUOTAS: "{nope" }, "CLAWFLEET_TENANT_QUOTAS"],
    [{ CLAWFLEET_TENANT_QUOTAS: '{"tenantA":{"max_running":0}}' }, "CLAWFLEET_TENANT_QUOTAS"],
    [{ CLAWFLEET_TENANT_QUOTAS: '{"tenantA":{"max_runing":2}}' }, "CLAWFLEET_TENANT_QUOTAS"],
    [{ CLAWFLEET_TENANT_QUOTAS: '{"bad tenant":{"max_running":2}}' }, "CLAWFLEET_TENANT_QUOTAS"],
  ])("refuses %j at start-up, naming the variable", (env, variable) => {
    expect(() => loadConfig(env)).toThrow(variable);
  });
});
