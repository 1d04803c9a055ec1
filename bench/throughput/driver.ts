/**
 * Feeds order-router tasks to a running layout over the REST API and reads back
 * when each finished: as fast as the API takes them (throughput) or on a fixed
 * schedule (latency at light load). Completion is read from Postgres in the
 * distributed layouts (no load on the nodes) and from `GET /v1/tasks` when embedded.
 */
import pg from "pg";
import type { RunningLayout } from "./layouts";
import { sleep } from "./meters";

export interface Finished {
  id: string;
  status: string;
  steps: number;
  /** epoch ms */
  finishedAt: number;
}

export interface Sent {
  id: string;
  /** epoch ms the POST was sent */
  sentAt: number;
}

const TERMINAL = ["succeeded", "failed", "cancelled"];

function orderFor(i: number): { agent: string; input: { order_id: string } } {
  return { agent: "order-router", input: { order_id: `ORD-${1000 + (i % 1000)}` } };
}

async function submitOne(base: string, i: number): Promise<Sent> {
  const sentAt = Date.now();
  const r = await post(base, i);
  const body = (await r.json()) as { id?: string };
  if (r.status !== 202 || body.id === undefined) throw new Error(`submit answered ${r.status}: ${JSON.stringify(body)}`);
  return { id: body.id, sentAt };
}

function post(base: string, i: number): Promise<Response> {
  return fetch(`${base}/v1/tasks`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(orderFor(i)) });
}

/**
 * Waits until the layout takes submissions (a freshly started cluster answers 503 until
 * every role has found the others), then runs `n` tasks to the end: agents loaded,
 * statements prepared, pools open before anything is measured.
 */
export async function warmUp(l: RunningLayout, n: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  let probe: string | undefined;
  for (;;) {
    const r = await post(l.base, 0);
    const body = (await r.json()) as { id?: string };
    probe = body.id;
    if (r.status === 202) break;
    if (Date.now() > deadline) throw new Error(`the layout still answers ${r.status} to a submit`);
    await sleep(1_000);
  }
  const sent = await submitBurst(l.base, n, n);
  await waitFinished(l, [...sent.map((s) => s.id), ...(probe === undefined ? [] : [probe])], 300_000);
}

/** `n` tasks, `concurrency` POSTs in flight at a time. */
export async function submitBurst(base: string, n: number, concurrency = 16): Promise<Sent[]> {
  const sent: Sent[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) sent.push(await submitOne(base, next++));
    }),
  );
  return sent;
}

/** `n` tasks at `perSecond`, each sent at its scheduled time whatever the earlier ones are doing. */
export async function submitPaced(base: string, n: number, perSecond: number): Promise<Sent[]> {
  const t0 = Date.now();
  const pending: Promise<Sent>[] = [];
  for (let i = 0; i < n; i++) {
    await sleep(Math.max(0, t0 + (i * 1000) / perSecond - Date.now()));
    pending.push(submitOne(base, i));
  }
  return Promise.all(pending);
}

async function finishedInPostgres(url: string, ids: readonly string[]): Promise<Finished[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ id: string; status: string; steps: number; finished_ms: string | null }>(
      "SELECT id, status, steps, (extract(epoch FROM finished_at) * 1000)::text AS finished_ms FROM tasks WHERE id = ANY($1::uuid[]) AND status = ANY($2::text[])",
      [ids, TERMINAL],
    );
    return r.rows.map((row) => ({ id: row.id, status: row.status, steps: row.steps, finishedAt: Number(row.finished_ms) }));
  } finally {
    await c.end();
  }
}

interface ListPage {
  tasks: Array<{ id: string; status: string; steps: number; finished_at: string | null }>;
  next_cursor: string | null;
}

async function finishedOverApi(base: string, ids: readonly string[]): Promise<Finished[]> {
  const wanted = new Set(ids);
  const out: Finished[] = [];
  for (const status of TERMINAL) {
    let cursor: string | null = null;
    do {
      const q: string = `${base}/v1/tasks?limit=1000&status=${status}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page = (await (await fetch(q)).json()) as ListPage;
      for (const t of page.tasks)
        if (wanted.has(t.id) && t.finished_at) out.push({ id: t.id, status: t.status, steps: t.steps, finishedAt: Date.parse(t.finished_at) });
      cursor = page.next_cursor;
    } while (cursor);
  }
  return out;
}

/**
 * Polls until every task is terminal; what finished. Fails when `timeoutMs` passes first, or when no
 * task has finished for `stallMs`: a stalled run says so sooner than its deadline, and no figure is
 * made of part of a run. The default is three times Clawfleet's longest wait between a task's
 * attempts (a retry's backoff, 60 s at most).
 */
export async function waitFinished(l: RunningLayout, ids: readonly string[], timeoutMs: number, pollMs = 500, stallMs = 180_000): Promise<Finished[]> {
  const deadline = Date.now() + timeoutMs;
  let seen = -1;
  let progressAt = Date.now();
  for (;;) {
    const done = l.scratch ? await finishedInPostgres(l.scratch.db.url, ids) : await finishedOverApi(l.base, ids);
    if (done.length >= ids.length) return done;
    if (Date.now() > deadline) throw new Error(`only ${done.length} of ${ids.length} tasks finished in ${timeoutMs / 1000} s`);
    if (done.length > seen) [seen, progressAt] = [done.length, Date.now()];
    else if (Date.now() - progressAt > stallMs) throw new Error(`no task finished for ${stallMs / 1000} s: ${done.length} of ${ids.length} finished`);
    await sleep(pollMs);
  }
}
