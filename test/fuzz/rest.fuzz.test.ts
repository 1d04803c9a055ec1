/**
 * REST fuzz: generated requests (bodies, headers, paths, methods, encodings, lying
 * framings) against one real `clawfleet start` process running every role, on
 * Postgres, Redis and NATS when they are up (else embedded, on PGlite). Properties:
 * never a 5xx, every error is the one JSON error body, a 202 names a stored task
 * and a key names one task, the process never dies, and at the end every task is
 * in a state its lifecycle can reach.
 *
 * Fixed seed and size here; CLAWFLEET_FUZZ_RUNS / CLAWFLEET_FUZZ_SEED for longer runs (README, "Tests").
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/pgTaskStore";
import { startNodeProcess, stopAll, tempDir, type NodeProcess } from "../../testkit/cluster";
import { createScratch, hasService, type Scratch } from "../helpers/services";
import { rawRequest, type RawResponse } from "./rawHttp";
import { AGENT, fuzzCase, methodOf, toRaw, validKeyOf, type FuzzCase } from "./restArbitraries";
import { fuzzSettings } from "./settings";
import { impossibilities, shapeOfRow } from "./taskStates";

const distributed = hasService("postgres") && hasService("redis") && hasService("nats");
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What is wrong with one answer; undefined when it keeps the contract. */
// Bytes that are not HTTP/1.1 (`notHttp`) are refused by Node's parser before any route sees them; the api
// answers those itself (`clientError`), so they too must carry the contract's JSON error body.
function violation(c: FuzzCase, r: RawResponse): string | undefined {
  const health = c.path.route === "live" || c.path.route === "ready";
  if (r.status >= 500 && !(health && r.status === 503)) return `status ${r.status}: ${r.body.toString("utf8").slice(0, 300)}`;
  if (methodOf(c) === "HEAD") return undefined;
  if (r.status >= 400) {
    let body: unknown;
    try {
      body = JSON.parse(r.body.toString("utf8"));
    } catch {
      return `status ${r.status} without a JSON body: ${JSON.stringify(r.body.toString("latin1").slice(0, 200))}`;
    }
    if (health && r.status === 503) return undefined;
    const e = (body as { error?: Record<string, unknown> }).error;
    const keysOk = body !== null && typeof body === "object" && Object.keys(body).join() === "error";
    if (!keysOk || !e || typeof e.type !== "string" || typeof e.message !== "string" || Object.keys(e).some((k) => !["type", "message", "details"].includes(k))) {
      return `status ${r.status} with a body that is not {"error": {type, message, details?}}: ${r.body.toString("utf8").slice(0, 300)}`;
    }
  }
  return undefined;
}

describe(`REST fuzz (${distributed ? "Postgres, Redis, NATS" : "embedded, PGlite"})`, () => {
  const data = tempDir("clawfleet-fuzz-rest-");
  let scratch: Scratch | undefined;
  let node: NodeProcess;
  /** Ids of the tasks the server accepted (202), for "known id" paths and the final check. */
  const accepted: string[] = [];
  const keyToId = new Map<string, string>();

  beforeAll(async () => {
    const common = { CLAWFLEET_AUTH: "off", CLAWFLEET_SIM_LATENCY_MS: "0", LOG_LEVEL: "warn" };
    if (distributed) {
      scratch = await createScratch("fuzzrest");
      node = await startNodeProcess({ name: "fuzz-rest", env: { ...scratch.env("api,intake,planner,executor,rate-gateway,checkpoint,metrics,tools"), ...common } });
    } else {
      node = await startNodeProcess({ name: "fuzz-rest", env: { CLAWFLEET_DATA_DIR: data.dir, CLAWFLEET_NAMESPACE: `fuzz-${process.pid}`, ...common } });
    }
  }, 90_000);

  afterAll(async () => {
    if (node) await stopAll([node]);
    await scratch?.remove();
    data.remove();
  }, 60_000);

  it("answers every generated request within the contract, and the process lives", async () => {
    const settings = fuzzSettings("rest", 600, 20_250_601);
    const { numRuns } = settings;
    const started = Date.now();
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(fuzzCase, async (c) => {
        const { req, incomplete } = toRaw(c, accepted);
        const r = await rawRequest(node.port, req, incomplete ? 1_500 : 15_000);
        if (node.proc.exitCode !== null || node.proc.signalCode !== null) throw new Error(`the node died:\n${node.output().slice(-3000)}`);
        if (r === undefined) {
          if (incomplete) return;
          throw new Error("no answer");
        }
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        const wrong = violation(c, r);
        if (wrong) throw new Error(`${wrong}\nrequest: ${JSON.stringify(req.target.toString()).slice(0, 300)} ${JSON.stringify(req.headers.map(([k, v]) => `${k}: ${v.toString()}`))}\nanswer headers: ${JSON.stringify(r.headers)} body: ${JSON.stringify(req.body?.toString("latin1").slice(0, 200))} length: ${String(req.contentLength)}`);
        if (r.status === 202) {
          const body = JSON.parse(r.body.toString("utf8")) as { id: string; status: string };
          expect(body.id).toMatch(UUID);
          expect(r.headers.location).toBe(`/v1/tasks/${body.id}`);
          const key = validKeyOf(c);
          const before = key === undefined ? undefined : keyToId.get(key);
          // A new task is queued; a replayed key answers its task as it is now (planners run meanwhile).
          if (before === undefined) expect(body.status).toBe("queued");
          else expect(body.id, `Idempotency-Key ${JSON.stringify(key)}`).toBe(before);
          if (key !== undefined) keyToId.set(key, body.id);
          if (!accepted.includes(body.id)) accepted.push(body.id);
        }
      }),
      { ...settings, interruptAfterTimeLimit: 20 * 60_000 },
    );
    process.stdout.write(
      `fuzz rest: ${numRuns} requests in ${Date.now() - started} ms; ${accepted.length} tasks accepted; statuses ${JSON.stringify(Object.fromEntries(statuses))}\n`,
    );
    const live = await rawRequest(node.port, { method: "GET", target: "/health/live", headers: [] });
    expect(live?.status).toBe(200);
  }, 25 * 60_000);

  it("leaves every accepted task readable and stored, each in a state its lifecycle can reach", async () => {
    for (const id of accepted.slice(0, 200)) {
      const r = await rawRequest(node.port, { method: "GET", target: `/v1/tasks/${id}`, headers: [] });
      expect(r?.status, id).toBe(200);
      const view = JSON.parse(r?.body.toString("utf8") ?? "{}") as Parameters<typeof impossibilities>[0];
      expect(view.id).toBe(id);
      expect(impossibilities(view)).toEqual([]);
    }
    // A graceful stop, then the store as the node left it.
    await stopAll([node]);
    expect((await node.exited).code, node.output().slice(-3000)).toBe(0);
    const db = await openStore(scratch ? { databaseUrl: scratch.db.url, migrate: false } : { dataDir: data.dir, migrate: false });
    try {
      const { rows } = await db.pool.query<Record<string, unknown>>("SELECT * FROM tasks");
      const odd = await db.pool.query("SELECT id, created_at::text AS c, started_at::text AS s, updated_at::text AS u, attempts, fence, lease_owner FROM tasks WHERE started_at < created_at");
      if (odd.rows.length > 0) process.stdout.write(`DIAG ${JSON.stringify(odd.rows)}\n`);
      const stored = new Set(rows.map((r) => String(r.id)));
      for (const id of accepted) expect(stored.has(id), `accepted task ${id} is stored`).toBe(true);
      expect(rows.every((r) => r.agent === AGENT)).toBe(true);
      expect(rows.flatMap((r) => impossibilities(shapeOfRow(r)))).toEqual([]);
    } finally {
      await db.close();
    }
  }, 120_000);
});
