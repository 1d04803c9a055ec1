/**
 * api - a submit whose intake node dies mid-call (real processes on NATS). A
 * Postgres lock held by the test stops every write of new tasks, so the intake is
 * inside its commit when it is killed; the api node's call is then rejected by the
 * broker (RequestRejectedError, the node left). The client gets a 503 with
 * Retry-After, not a 500: the api cannot know whether the task was committed, and
 * the retry with the same Idempotency-Key answers one task, once.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cluster, sleep } from "../../testkit/crash";
import { createScratch, NATS_TEST_URL, REDIS_TEST_URL, type Scratch } from "../../testkit/scratch";
import { hasService } from "../helpers/services";

const ready = hasService("postgres") && hasService("redis") && hasService("nats");

async function post(base: string, key: string, timeoutMs = 90_000): Promise<{ status: number; retryAfter: string | null; body: { id?: string; error?: { type?: string } } }> {
  const r = await fetch(`${base}/v1/tasks`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": key },
    body: JSON.stringify({ agent: "order-router", input: { order_id: "ORD-1042" } }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: r.status, retryAfter: r.headers.get("retry-after"), body: (await r.json()) as { id?: string } };
}

/** Resolves once `check` holds, polled every 100 ms; throws after `ms`. */
async function waitFor(check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not seen within ${ms} ms: the submit's insert waiting on the lock`);
    await sleep(100);
  }
}

/** Posts until the answer is not a 503 (a role not yet discovered, or gone), as a client told to retry does. */
async function postRetrying(base: string, key: string): Promise<Awaited<ReturnType<typeof post>>> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const answer = await post(base, key);
    if (answer.status !== 503 || Date.now() > deadline) return answer;
    await sleep(Number(answer.retryAfter ?? 1) * 100);
  }
}

describe.skipIf(!ready)("api - the intake node gone mid-submit", () => {
  let scratch: Scratch;
  let cluster: Cluster;
  let client: pg.Client;
  let base: string;

  beforeAll(async () => {
    scratch = await createScratch("apigone");
    cluster = new Cluster({
      namespace: scratch.namespace,
      databaseUrl: scratch.db.url,
      redisUrl: REDIS_TEST_URL,
      natsUrl: NATS_TEST_URL,
      // No model is called here.
      simUrl: "http://127.0.0.1:9",
      env: { CLAWFLEET_AUTH: "off" },
    });
    await cluster.start("checkpoint", "checkpoint");
    const [api] = await Promise.all([cluster.start("api", "api,metrics"), cluster.start("intake", "intake")]);
    base = `http://127.0.0.1:${api.port}`;
    client = new pg.Client({ connectionString: scratch.db.url });
    await client.connect();
  }, 180_000);

  afterAll(async () => {
    cluster?.get("checkpoint").signal("SIGCONT");
    await client?.end().catch(() => undefined);
    await cluster?.stopAll();
    await scratch?.remove();
  }, 120_000);

  it("intake killed mid-commit - the client gets 503 with Retry-After; the retry with the same Idempotency-Key answers the one task", async () => {
    expect((await postRetrying(base, randomUUID())).status).toBe(202);
    const key = randomUUID();

    // Reads go on; a write of a new task (or of its key) waits for this transaction.
    await client.query("BEGIN");
    let first: Awaited<ReturnType<typeof post>>;
    try {
      await client.query("LOCK TABLE tasks, idempotency_keys IN EXCLUSIVE MODE");
      const answer = post(base, key);
      // Observed whatever happens next, so a failure below leaves no unhandled rejection.
      answer.catch(() => undefined);
      // The request reaches the intake, whose commit waits on the lock; then the intake dies. Other writers (the
      // reaper's sweeps) wait on the lock too: only a waiting insert of a new task or key is the submit's.
      await waitFor(async () => {
        // Inside a transaction, Postgres reads the activity view once and keeps what it read: cleared per poll.
        await client.query("SELECT pg_stat_clear_snapshot()");
        const { rows } = await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
              AND query ~* 'INSERT INTO (tasks|idempotency_keys)'`,
        );
        return (rows[0]?.n ?? 0) >= 1;
      }, 15_000);
      await cluster.kill("intake");
      first = await answer;
    } finally {
      // The lock goes (the dead intake's write finishes or is rolled back with its connection).
      await client.query("COMMIT");
    }
    expect(first.status, JSON.stringify(first.body)).toBe(503);
    expect(Number(first.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(first.body.error?.type).toBe("unavailable");

    // An intake is back.
    await cluster.start("intake");
    const retried = await postRetrying(base, key);
    expect(retried.status, JSON.stringify(retried.body)).toBe(202);
    const { rows } = await client.query<{ task_id: string }>("SELECT task_id FROM idempotency_keys WHERE key LIKE '%' || $1", [key]);
    expect(rows.map((r) => r.task_id)).toEqual([retried.body.id]);
  }, 240_000);

  it("a submit is committed by the intake itself - with the checkpoint node stopped, the 202 still comes, after the commit", async () => {
    const checkpoint = cluster.get("checkpoint");
    // A fresh intake (the test above started it) has its routing and switches loaded before the checkpoint stops.
    expect((await postRetrying(base, randomUUID())).status).toBe(202);
    checkpoint.signal("SIGSTOP");
    try {
      const key = randomUUID();
      const answer = await post(base, key, 10_000);
      expect(answer.status, JSON.stringify(answer.body)).toBe(202);
      const { rows } = await client.query<{ status: string }>("SELECT status FROM tasks WHERE id = $1", [answer.body.id]);
      expect(rows.map((r) => r.status)).toEqual(["queued"]);
    } finally {
      checkpoint.signal("SIGCONT");
    }
  }, 120_000);
});
