/**
 * intake - a retried submit (same Idempotency-Key, same tenant) answers the
 * task it committed before any of the gates that may have closed since: a
 * tenant's submit quota, an agent's daily cost cap, a webhook URL whose DNS
 * changed. The retry README recommends after a 503 must not turn into a 429
 * or a 422 for a task that exists.
 */
import { describe, expect, it } from "vitest";
import { AgentCatalog, parseAgentFile } from "../../src/agent/definition";
import { RateLimitedError, WebhookUrlRefusedError } from "../../src/errors";
import { Intake } from "../../src/queue/intake";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { MemorySubmitBuckets, SubmitQuota, TenantQuotas } from "../../src/tenancy";
import { parseWebhookSecrets, webhookAdmission } from "../../src/webhooks";
import { useMemoryStore } from "../helpers/memoryStore";

let store: PgTaskStore;
useMemoryStore((s) => (store = s));

const AGENT = parseAgentFile(["---", "name: echo", "tiers:", "  main: {model: claude-haiku-5-5, max_tokens: 64}", "default_tier: main", "---", "Say it back."].join("\n"), "echo.md");
const SECRET = `whsec_${Buffer.alloc(32, 3).toString("base64")}`;

function intakeWith(dnsAnswers: { refused: boolean }): Intake {
  // One submit per tenant at most, for the whole test.
  const submitQuota = new SubmitQuota(new TenantQuotas({ maxRunning: null, submitRate: 0.001, submitBurst: 1, tenants: {} }), new MemorySubmitBuckets());
  const guard = {
    check: (url: string) => (dnsAnswers.refused ? Promise.reject(new WebhookUrlRefusedError(`webhook URL refused: ${url} now resolves to 10.0.0.7`, { reason: "private" })) : Promise.resolve({} as never)),
  };
  return new Intake({
    store,
    agents: new AgentCatalog([AGENT]),
    wakeUps: { publishCommitted: async () => undefined },
    submitQuota,
    webhooks: webhookAdmission({ byId: parseWebhookSecrets(["acme", "beta", "gamma"].map((t) => `${t}:default=${SECRET}`).join(" ")) }, guard),
  });
}

describe("intake - a retried submit", () => {
  it("answers the task its key committed, though the tenant's quota is spent and the webhook's DNS now refuses it", async () => {
    const dns = { refused: false };
    const intake = intakeWith(dns);
    const body = { agent: "echo", input: "hi", webhook: { url: "https://hooks.example.com/x" } };
    const first = await intake.submit(body, "order-7", "acme");
    expect(first).toMatchObject({ created: true, status: "queued" });

    dns.refused = true;
    // A new submit meets both closed gates...
    await expect(intake.submit({ agent: "echo", input: "hi" }, "order-8", "acme")).rejects.toBeInstanceOf(RateLimitedError);
    await expect(intake.submit(body, undefined, "beta")).rejects.toBeInstanceOf(WebhookUrlRefusedError);
    // ...the retry of the committed one is answered with its task, nothing new stored.
    expect(await intake.submit(body, "order-7", "acme")).toEqual({ id: first.id, status: "queued", created: false, prompt_version: first.prompt_version });
    // The same key of another tenant is another key.
    await expect(intake.submit(body, "order-7", "gamma")).rejects.toBeInstanceOf(WebhookUrlRefusedError);
  });

  it("does not answer from a key older than 24 hours: the submit is a new one, through every gate", async () => {
    const intake = intakeWith({ refused: false });
    const first = await intake.submit({ agent: "echo", input: "hi" }, "old-key", "delta");
    const pool = (store as unknown as { pool: { query: (sql: string, values: unknown[]) => Promise<unknown> } }).pool;
    await pool.query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = $1", ["old-key"]);
    expect(await store.taskByIdempotencyKey("old-key", "delta")).toBeNull();
    // Delta's one submit is spent: a new submit under the stale key meets the quota.
    await expect(intake.submit({ agent: "echo", input: "hi" }, "old-key", "delta")).rejects.toBeInstanceOf(RateLimitedError);
    expect((await store.getTask(first.id))?.status).toBe("queued");
  });
});
