/**
 * webhooks - signing per Standard Webhooks (checked against the spec's own
 * published vector), the receiver's verification, CLAWFLEET_WEBHOOK_SECRETS,
 * and the retry schedule (doubling, capped, giving up).
 */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { ConfigError, ValidationError } from "../../src/errors";
import {
  afterFailure,
  defaultSecretIdOf,
  parseWebhookSecrets,
  secretKey,
  signWebhook,
  verifyWebhook,
  webhookAdmission,
  webhookHeaders,
  webhookRetryDelayMs,
} from "../../src/webhooks";

// The vector of the Standard Webhooks reference library's "sign function works" test.
const SPEC = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};

const key = secretKey(SPEC.secret);
const at = SPEC.timestamp * 1000;

describe("webhooks - signature", () => {
  it("signs the spec's published vector to the published signature", () => {
    expect(signWebhook(key, SPEC.id, SPEC.timestamp, SPEC.body)).toBe(SPEC.signature);
  });

  it("sends webhook-id, the attempt's Unix seconds and the v1 signature", () => {
    expect(webhookHeaders(key, SPEC.id, SPEC.body, at + 999)).toEqual({
      "webhook-id": SPEC.id,
      "webhook-timestamp": String(SPEC.timestamp),
      "webhook-signature": SPEC.signature,
    });
  });

  it("verifies what it signs, and nothing else", () => {
    const headers = webhookHeaders(key, SPEC.id, SPEC.body, at);
    expect(verifyWebhook(key, headers, SPEC.body, { nowMs: at })).toEqual({ ok: true });
    expect(verifyWebhook(key, headers, SPEC.body.replace("2432232314", "2432232315"), { nowMs: at }).ok).toBe(false);
    expect(verifyWebhook(key, { ...headers, "webhook-id": "msg_other" }, SPEC.body, { nowMs: at }).ok).toBe(false);
    expect(verifyWebhook(secretKey(`whsec_${Buffer.alloc(24, 7).toString("base64")}`), headers, SPEC.body, { nowMs: at }).ok).toBe(false);
  });

  it("refuses a timestamp outside the tolerance, either way", () => {
    const headers = webhookHeaders(key, SPEC.id, SPEC.body, at);
    expect(verifyWebhook(key, headers, SPEC.body, { nowMs: at + 301_000 })).toEqual({ ok: false, reason: "webhook-timestamp is outside the tolerance" });
    expect(verifyWebhook(key, headers, SPEC.body, { nowMs: at - 301_000 }).ok).toBe(false);
  });

  it("accepts any one matching v1 signature among several (secret rotation) and ignores other versions", () => {
    const headers = webhookHeaders(key, SPEC.id, SPEC.body, at);
    const several = { ...headers, "webhook-signature": `v2,${SPEC.signature.slice(3)} v1,AAAA ${headers["webhook-signature"]}` };
    expect(verifyWebhook(key, several, SPEC.body, { nowMs: at })).toEqual({ ok: true });
    expect(verifyWebhook(key, { ...headers, "webhook-signature": `v2,${SPEC.signature.slice(3)}` }, SPEC.body, { nowMs: at }).ok).toBe(false);
  });

  it("refuses a delivery missing a header", () => {
    const { "webhook-id": _id, ...noId } = webhookHeaders(key, SPEC.id, SPEC.body, at);
    expect(verifyWebhook(key, noId, SPEC.body, { nowMs: at }).ok).toBe(false);
  });
});

describe("webhooks - secrets", () => {
  it.each([
    ["no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", /starts with "whsec_"/],
    ["not base64", "whsec_not*base64!", /standard base64/],
    ["too short", `whsec_${Buffer.alloc(8).toString("base64")}`, /24 to 64 bytes/],
    ["too long", `whsec_${Buffer.alloc(65).toString("base64")}`, /24 to 64 bytes/],
  ])("refuses a secret with %s", (_what, secret, message) => {
    expect(() => secretKey(secret)).toThrow(message);
  });

  it("reads a JSON object and an id=secret list alike; `default` is the default, else the only one", () => {
    const other = `whsec_${Buffer.alloc(32, 1).toString("base64")}`;
    expect(parseWebhookSecrets(JSON.stringify({ default: SPEC.secret, billing: other }))).toEqual({ default: SPEC.secret, billing: other });
    expect(parseWebhookSecrets(`default=${SPEC.secret}, billing=${other}\nops=${other}`)).toEqual({ default: SPEC.secret, billing: other, ops: other });
    expect(defaultSecretIdOf({ default: SPEC.secret, billing: other })).toBe("default");
    expect(defaultSecretIdOf({ billing: other })).toBe("billing");
    expect(defaultSecretIdOf({ billing: other, ops: other })).toBeUndefined();
    expect(defaultSecretIdOf({})).toBeUndefined();
  });

  it("names the offending id in its errors, never the secret's value", () => {
    const bad = "whsec_c2hvcnQ=";
    let message = "";
    try {
      loadConfig({ CLAWFLEET_WEBHOOK_SECRETS: `billing=${bad}` });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toContain('secret "billing"');
    expect(message).not.toContain("c2hvcnQ");
    expect(() => parseWebhookSecrets(`a=${SPEC.secret} a=${SPEC.secret}`)).toThrow(/given twice/);
    expect(() => parseWebhookSecrets(`-x=${SPEC.secret}`)).toThrow(/entry 1: the secret's id/);
  });

  it("never repeats a secret written without its id, even when its base64 padding reads as the separator", () => {
    const bare = `whsec_${Buffer.alloc(25, 7).toString("base64")}`;
    expect(bare.endsWith("=")).toBe(true);
    const slashed = `whsec_${Buffer.alloc(30, 0xff).toString("base64")}`;
    expect(slashed).toContain("/");
    for (const text of [bare, `default=${SPEC.secret} ${bare}`, `${slashed}=x`, JSON.stringify({ [slashed]: SPEC.secret })]) {
      let message = "";
      try {
        loadConfig({ CLAWFLEET_WEBHOOK_SECRETS: text });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/CLAWFLEET_WEBHOOK_SECRETS entry \d/);
      expect(message).not.toContain(bare.slice(6, 20));
      expect(message).not.toContain(slashed.slice(6, 20));
    }
  });

  it("gives each secret to one tenant: `<id>` the operator's, `<tenant>:<id>` that tenant's", () => {
    const acme = `whsec_${Buffer.alloc(32, 2).toString("base64")}`;
    const secrets = parseWebhookSecrets(`default=${SPEC.secret} billing=${SPEC.secret} acme:billing=${acme} default:ops=${SPEC.secret}`);
    expect(Object.keys(secrets)).toEqual(["default", "billing", "acme:billing", "ops"]);
    expect(defaultSecretIdOf(secrets)).toBe("default");
    expect(defaultSecretIdOf(secrets, "acme")).toBe("billing");
    expect(defaultSecretIdOf(secrets, "beta")).toBeUndefined();
    expect(() => parseWebhookSecrets(`ops=${SPEC.secret} default:ops=${SPEC.secret}`)).toThrow(/"ops" is given twice/);
    expect(() => parseWebhookSecrets(`-acme:x=${SPEC.secret}`)).toThrow(/entry 1/);
  });

  it("is configured from the environment with documented defaults", () => {
    const c = loadConfig({ CLAWFLEET_WEBHOOK_SECRETS: JSON.stringify({ default: SPEC.secret }) }).webhooks;
    expect(c).toEqual({
      secrets: { default: SPEC.secret },
      allowPrivate: false,
      timeoutMs: 10_000,
      connectTimeoutMs: 3_000,
      pollMs: 1_000,
      retry: { baseMs: 1_000, maxMs: 600_000 },
      maxAttempts: 150,
      maxAgeMs: 86_400_000,
    });
    expect(loadConfig({ CLAWFLEET_WEBHOOK_ALLOW_PRIVATE: "1" }).webhooks.allowPrivate).toBe(true);
    expect(() => loadConfig({ CLAWFLEET_WEBHOOK_ALLOW_PRIVATE: "yes" })).toThrow(ConfigError);
    expect(() => loadConfig({ CLAWFLEET_WEBHOOK_CONNECT_TIMEOUT_MS: "5000", CLAWFLEET_WEBHOOK_TIMEOUT_MS: "1000" })).toThrow(/CLAWFLEET_WEBHOOK_CONNECT_TIMEOUT_MS/);
  });

  it("refuses a submit's webhook at once when there is no secret to sign it with", async () => {
    const guard = { check: () => Promise.reject(new Error("the URL is not checked before the secret")) };
    const none = webhookAdmission({ byId: {} }, guard);
    await expect(none.admit({ url: "https://hooks.example.com/x" })).rejects.toMatchObject({ errorType: "validation_error", data: { field: "webhook" } });
    const two = webhookAdmission({ byId: { a: SPEC.secret, b: SPEC.secret } }, guard);
    await expect(two.admit({ url: "https://hooks.example.com/x" })).rejects.toMatchObject({ data: { field: "webhook.secret_id" } });
    await expect(two.admit({ url: "https://hooks.example.com/x", secret_id: "constructor" })).rejects.toBeInstanceOf(ValidationError);
  });

  it("stores the default secret's id when the submit names none", async () => {
    const admission = webhookAdmission({ byId: { default: SPEC.secret } }, { check: () => Promise.resolve({} as never) });
    await expect(admission.admit({ url: "https://hooks.example.com/x" })).resolves.toEqual({ url: "https://hooks.example.com/x", secret_id: "default" });
  });

  it("admits a tenant's webhook only with a secret of that tenant, named as the tenant knows it", async () => {
    const acme = `whsec_${Buffer.alloc(32, 2).toString("base64")}`;
    const admission = webhookAdmission({ byId: parseWebhookSecrets(`default=${SPEC.secret} billing=${SPEC.secret} acme:billing=${acme}`) }, { check: () => Promise.resolve({} as never) });
    const url = "https://hooks.example.com/x";
    await expect(admission.admit({ url }, "acme")).resolves.toEqual({ url, secret_id: "billing" });
    await expect(admission.admit({ url, secret_id: "billing" }, "acme")).resolves.toEqual({ url, secret_id: "billing" });
    // The operator's `default` is not acme's, nor is it any other tenant's.
    await expect(admission.admit({ url, secret_id: "default" }, "acme")).rejects.toMatchObject({ data: { field: "webhook.secret_id" } });
    await expect(admission.admit({ url, secret_id: "acme:billing" }, "default")).rejects.toBeInstanceOf(ValidationError);
    await expect(admission.admit({ url }, "beta")).rejects.toMatchObject({ message: expect.stringMatching(/none is configured for this tenant .*"beta:<id>"/), data: { field: "webhook" } });
    await expect(admission.admit({ url })).resolves.toEqual({ url, secret_id: "default" });
  });
});

describe("webhooks - retry schedule", () => {
  const policy = { baseMs: 1_000, maxMs: 600_000, maxAttempts: 150, maxAgeMs: 86_400_000 };
  const low = () => 0;
  const high = () => 0.999_999;

  it("doubles from 1 s and stops at 10 min, stretched by at most a quarter", () => {
    const floor = Array.from({ length: 12 }, (_, i) => webhookRetryDelayMs(i + 1, policy, low));
    expect(floor).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000, 600_000, 600_000]);
    for (let attempt = 1; attempt <= 12; attempt++) {
      const d = webhookRetryDelayMs(attempt, policy, high);
      expect(d).toBeGreaterThanOrEqual(floor[attempt - 1] ?? 0);
      expect(d).toBeLessThanOrEqual(Math.min(600_000, (floor[attempt - 1] ?? 0) * 1.25));
    }
    // Every wait is longer than the one before until the cap, whatever the jitter.
    for (let attempt = 2; attempt <= 10; attempt++) expect(webhookRetryDelayMs(attempt, policy, low)).toBeGreaterThan(webhookRetryDelayMs(attempt - 1, policy, high));
  });

  it("gives up after maxAttempts, or when the next attempt would come past maxAgeMs", () => {
    const t0 = Date.parse("2026-01-01T00:00:00Z");
    expect(afterFailure(1, t0, t0 + 5, policy, low)).toEqual({ state: "pending", retry_in_ms: 1_000 });
    expect(afterFailure(150, t0, t0 + 5, policy, low)).toEqual({ state: "failed" });
    expect(afterFailure(20, t0, t0 + policy.maxAgeMs - 600_001, policy, low)).toEqual({ state: "pending", retry_in_ms: 600_000 });
    expect(afterFailure(20, t0, t0 + policy.maxAgeMs - 599_999, policy, low)).toEqual({ state: "failed" });
  });

  it("reaches about a day with the defaults: the documented schedule", () => {
    let elapsed = 0;
    let attempts = 1;
    for (;;) {
      const next = afterFailure(attempts, 0, elapsed, policy, low);
      if (next.state === "failed") break;
      elapsed += next.retry_in_ms;
      attempts += 1;
    }
    console.log(`retry schedule with the defaults: ${attempts} attempts over ${(elapsed / 3_600_000).toFixed(1)} h`);
    expect(attempts).toBeGreaterThan(140);
    expect(elapsed).toBeGreaterThan(23 * 3_600_000);
    expect(elapsed).toBeLessThanOrEqual(policy.maxAgeMs);
  });
});
