/**
 * `ClawfleetTools`: a Moleculer mixin that makes a service's actions tools any
 * Clawfleet executor in the cluster can run. An action with a `tool` block
 * (`{description, input, sideEffect?, timeoutMs?, name?}`, see ToolBlock) is a
 * tool; the mixin checks every block when the service is created (a ConfigError
 * naming the service, action and field) and publishes the tools in the service's
 * registry metadata (`metadata.clawfleet`), from which executors on every node
 * find them, however many replicas run and wherever.
 *
 * A tool's action is called with the model's input as its params, already
 * checked against the tool's schema (and parsed by it, for a zod schema:
 * defaults and transforms applied), and `ctx.meta` holds `idempotencyKey`
 * (`taskId:step`, the same on every execution of the step: a side-effect tool
 * dedupes on it), `taskId`, `step` and `agent`.
 *
 * Inside a Clawfleet node, `this.clawfleet.database()` is the node's database
 * (PGlite embedded, Postgres distributed), and `clawfleet: { migrations }` in
 * the schema names a folder of numbered SQL files applied at the service's start,
 * with a history of the service's own.
 */
import path from "node:path";
import { Errors, Service, type Context, type ServiceSchema } from "moleculer";
import type pg from "pg";
import type { z } from "zod";
import { ConfigError } from "../src/errors";
import { requireNodeHandle } from "../src/tools/nodeHandle";
import { migrateToolService } from "../src/tools/serviceMigrations";
import { toolsOfService } from "../src/tools/toolBlock";

/** What `this.clawfleet` offers a tool service's handlers and hooks. */
export interface ClawfleetToolsHandle {
  /** The node's pg-compatible pool; rejects with a ConfigError outside a Clawfleet node. Do not end it. */
  database(): Promise<pg.Pool>;
}

/** A service with the mixin, as its handlers see `this`. */
export type ClawfleetToolsService = Service & { clawfleet: ClawfleetToolsHandle };

/** The schema's own `clawfleet` settings. */
export interface ClawfleetToolsOptions {
  /** Folder of `NNN_lower_snake.sql` files, applied at start; relative to the working directory. */
  migrations?: string;
}

interface MergedSchema {
  name: string;
  version?: string | number;
  settings?: { $noVersionPrefix?: boolean };
  metadata?: Record<string, unknown>;
  actions?: Record<string, unknown>;
  clawfleet?: unknown;
}

function optionsOf(fullName: string, raw: unknown): ClawfleetToolsOptions {
  if (raw === undefined) return {};
  const at = `service ${fullName}`;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(at, "clawfleet must be an object { migrations? }");
  const { migrations, ...rest } = raw as Record<string, unknown>;
  const extra = Object.keys(rest)[0];
  if (extra !== undefined) throw new ConfigError(at, `clawfleet.${extra} is not a setting (settings: migrations)`);
  if (migrations !== undefined && (typeof migrations !== "string" || migrations === "")) throw new ConfigError(at, "clawfleet.migrations must name a folder");
  return migrations === undefined ? {} : { migrations };
}

type Handler = (this: Service, ctx: Context) => unknown;

/**
 * A zod input's handler gets the parsed params (defaults and transforms applied), as its types say. The
 * executor has checked the JSON Schema already; what only zod can say (a refinement) fails here, as the
 * tool's own error, which the model reads.
 */
function parsingHandler(schema: z.ZodType, handler: Handler): Handler {
  return function (this: Service, ctx: Context) {
    const parsed = schema.safeParse(ctx.params);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
      throw new Errors.ValidationError(`invalid input: ${issues.map((i) => `${i.path || "(input)"}: ${i.message}`).join("; ")}`, "TOOL_INPUT", { issues });
    }
    ctx.params = parsed.data;
    return handler.call(this, ctx);
  };
}

export const ClawfleetTools: Partial<ServiceSchema> = {
  merged(this: Service, raw: ServiceSchema) {
    const schema = raw as MergedSchema;
    const noPrefix = schema.settings?.$noVersionPrefix === true;
    const fullName = Service.getVersionedFullName(schema.name, noPrefix ? undefined : schema.version);
    optionsOf(fullName, schema.clawfleet);
    const { metadata, byAction } = toolsOfService({ fullName, actions: schema.actions });
    // Each block is replaced by what it was checked into: the registry sends actions to every node.
    for (const [key, { tool, zod }] of byAction) {
      const action = schema.actions?.[key] as { handler?: unknown };
      const handler = zod && typeof action.handler === "function" ? parsingHandler(zod, action.handler as Handler) : action.handler;
      schema.actions = { ...schema.actions, [key]: { ...action, tool, handler } };
    }
    schema.metadata = { ...schema.metadata, clawfleet: metadata };
  },

  created(this: Service) {
    const { broker, fullName } = this;
    const handle: ClawfleetToolsHandle = { database: async () => requireNodeHandle(broker, `service ${fullName}`).database() };
    (this as ClawfleetToolsService).clawfleet = handle;
  },

  async started(this: Service) {
    const { migrations } = optionsOf(this.fullName, (this.schema as MergedSchema).clawfleet);
    if (migrations === undefined) return;
    const pool = await (this as ClawfleetToolsService).clawfleet.database();
    const { applied } = await migrateToolService(pool, this.name, path.resolve(migrations));
    if (applied.length > 0) this.logger.info({ event: "tools.migrated", service: this.fullName, applied }, `applied ${applied.length} migration(s) of ${this.fullName}`);
  },
};
