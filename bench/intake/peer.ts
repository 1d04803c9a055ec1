/**
 * The intake benchmark's peer: a plain moleculer-web endpoint, `POST /v1/tasks`,
 * that inserts the body into Postgres (one commit) and answers 202 with the id —
 * durable before its answer, like Clawfleet's intake, and nothing else (no
 * validation, agents, idempotency keys, quotas or wake-ups).
 *
 * Run by bench/intake/run.ts as `node --require tsx/cjs bench/intake/peer.ts`
 * with DATABASE_URL and PORT.
 */
import { randomUUID } from "node:crypto";
import { ServiceBroker, type Context } from "moleculer";
import ApiGateway from "moleculer-web";
import pg from "pg";

async function main(): Promise<void> {
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
  await pool.query("CREATE TABLE IF NOT EXISTS peer_tasks (id uuid PRIMARY KEY, body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())");
  const broker = new ServiceBroker({ nodeID: `intake-peer-${process.pid}`, logLevel: "warn" });
  broker.createService({
    name: "peer",
    actions: {
      submit: async (ctx: Context<Record<string, unknown>, { $statusCode?: number }>) => {
        const id = randomUUID();
        await pool.query("INSERT INTO peer_tasks (id, body) VALUES ($1, $2)", [id, JSON.stringify(ctx.params)]);
        ctx.meta.$statusCode = 202;
        return { id, status: "queued" };
      },
      ready: () => ({ ready: true }),
    },
  });
  broker.createService({
    name: "api",
    mixins: [ApiGateway],
    settings: {
      port: Number(process.env.PORT ?? 3000),
      ip: "127.0.0.1",
      routes: [{ path: "/", aliases: { "POST v1/tasks": "peer.submit", "GET health/ready": "peer.ready" }, bodyParsers: { json: true } }],
    },
  });
  await broker.start();
  const stop = () => void broker.stop().then(() => pool.end().then(() => process.exit(0)));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
