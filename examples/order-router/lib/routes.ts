/**
 * Where `route_order` records its side effect: the `order_routes` table (this
 * example's migrations/). The idempotency key is the primary key, so a step
 * executed again after a crash finds the first execution's row and changes
 * nothing: the order is routed once, whatever happens to the processes.
 */
import { createHash } from "node:crypto";
import { UnavailableError } from "clawfleet";

/** The part of a `pg.Pool` this needs (the node lends one: `this.clawfleet.database()`). */
export interface Queryable {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

export interface RouteRequest {
  idempotencyKey: string;
  taskId: string;
  orderId: string;
  warehouseId: string;
}

export interface RouteConfirmation {
  order_id: string;
  warehouse_id: string;
  confirmation: string;
  routed_at: string;
  /** True when this call found an earlier execution's routing instead of making one. */
  replayed: boolean;
}

interface RouteRow {
  order_id: string;
  warehouse_id: string;
  confirmation: string;
  routed_at: Date | string;
}

/** Node errno codes and SQLSTATE classes that mean "the database is not reachable right now". */
const CONNECTION_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "57P01", "57P02", "57P03", "53300"]);
const CONNECTION_MESSAGE = /connection terminated|connection (?:is )?closed|timeout exceeded when trying to connect|client has encountered a connection error|cannot use a pool after calling end|pglite is closed/i;

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function isConnectionError(err: unknown): boolean {
  const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
  return CONNECTION_CODES.has(code) || code.startsWith("08") || CONNECTION_MESSAGE.test(messageOf(err));
}

/** A short reference a person can quote; derived from the key, so every execution of a step names the same one. */
export function confirmationFor(idempotencyKey: string): string {
  return `RT-${createHash("sha256").update(idempotencyKey).digest("hex").slice(0, 10).toUpperCase()}`;
}

export class OrderRoutes {
  constructor(private readonly db: Queryable) {}

  async route(req: RouteRequest): Promise<RouteConfirmation> {
    const inserted = await this.query(
      `INSERT INTO order_routes (idempotency_key, task_id, order_id, warehouse_id, confirmation)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (idempotency_key) DO NOTHING`,
      [req.idempotencyKey, req.taskId, req.orderId, req.warehouseId, confirmationFor(req.idempotencyKey)],
    );
    const { rows } = await this.query("SELECT order_id, warehouse_id, confirmation, routed_at FROM order_routes WHERE idempotency_key = $1", [req.idempotencyKey]);
    const row = rows[0] as RouteRow | undefined;
    if (!row) throw new Error(`routing ${req.idempotencyKey} was written but cannot be read back`);
    return {
      order_id: row.order_id,
      warehouse_id: row.warehouse_id,
      confirmation: row.confirmation,
      routed_at: new Date(row.routed_at).toISOString(),
      replayed: inserted.rowCount === 0,
    };
  }

  async countEffects(): Promise<number> {
    const { rows } = await this.query("SELECT count(*)::int AS n FROM order_routes");
    return Number((rows[0] as { n: number } | undefined)?.n ?? 0);
  }

  /** Routings per task: more than one for a task means an order was routed twice. */
  async effectsByTask(): Promise<Map<string, number>> {
    const { rows } = await this.query("SELECT task_id, count(*)::int AS n FROM order_routes GROUP BY task_id ORDER BY task_id");
    return new Map((rows as Array<{ task_id: string; n: number }>).map((r) => [r.task_id, Number(r.n)]));
  }

  /** A database that cannot be reached is the back end's trouble, not the model's: Clawfleet retries the step (same key). */
  private async query(text: string, params?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }> {
    try {
      return await this.db.query(text, params);
    } catch (err) {
      if (isConnectionError(err)) throw new UnavailableError(`order routes database unavailable: ${messageOf(err)}`, { backend: "order_routes" });
      throw err;
    }
  }
}
