/**
 * The ClawfleetTools mixin: what it checks in a service's tool blocks when the
 * service is created, what it publishes in the registry for executors to find,
 * and the node's database it lends (with the service's own migrations).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { ClawfleetTools } from "../../mixins";
import type { ToolServiceMetadata } from "../../src/contracts";
import { ConfigError } from "../../src/errors";
import { openStore, type OpenedStore } from "../../src/store/pgTaskStore";
import { attachNodeHandle } from "../../src/tools/nodeHandle";

const brokers: ServiceBroker[] = [];
function broker(): ServiceBroker {
  const b = new ServiceBroker({ logger: false, nodeID: `mixin-${brokers.length}` });
  brokers.push(b);
  return b;
}

afterEach(async () => {
  await Promise.all(brokers.splice(0).map((b) => b.stop()));
});

const echo = { handler: (ctx: { params: unknown }) => ctx.params };

function create(schema: Partial<ServiceSchema>): ServiceSchema {
  const b = broker();
  return b.createService({ name: "orders", mixins: [ClawfleetTools], ...schema });
}

function published(schema: Partial<ServiceSchema>): ToolServiceMetadata {
  const svc = create(schema) as unknown as { metadata: { clawfleet: ToolServiceMetadata } };
  return svc.metadata.clawfleet;
}

/** The ConfigError creating the service throws. */
function refusal(schema: Partial<ServiceSchema>): string {
  try {
    create(schema);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("the service was created");
}

describe("ClawfleetTools - metadata", () => {
  it("mixin - publishes each tool with its action, description, JSON Schema, side effect and timeout", () => {
    const meta = published({
      actions: {
        lookup: { ...echo, tool: { description: "Looks an order up.", input: { type: "object", properties: { id: { type: "string" } }, required: ["id"] } } },
        route: {
          ...echo,
          tool: {
            name: "route_order",
            description: "Routes an order.",
            sideEffect: true,
            timeoutMs: 2500,
            input: () => z.object({ order_id: z.string().describe("The order id"), rush: z.boolean().default(false) }),
          },
        },
        health: echo,
        plain: () => "not a tool",
      },
    });
    expect(meta.version).toBe(1);
    expect(meta.tools).toEqual([
      {
        name: "lookup",
        action: "orders.lookup",
        description: "Looks an order up.",
        inputSchema: { type: "object", properties: { id: { type: "string" } }, required: ["id"] },
        sideEffect: false,
      },
      {
        name: "route_order",
        action: "orders.route",
        description: "Routes an order.",
        // zod's input side: a field with a default is optional to the model; descriptions survive.
        inputSchema: {
          type: "object",
          properties: { order_id: { type: "string", description: "The order id" }, rush: { type: "boolean", default: false } },
          required: ["order_id"],
        },
        sideEffect: true,
        timeoutMs: 2500,
      },
    ]);
  });

  it("mixin - a versioned service's actions carry its version prefix; an action's own name is the default tool name", () => {
    const meta = published({ version: 2, actions: { x: { ...echo, name: "check_stock", tool: { description: "d", input: { type: "object" } } } } });
    expect(meta.tools.map((t) => [t.name, t.action])).toEqual([["check_stock", "v2.orders.check_stock"]]);
  });

  it("mixin - the registry lists the tools for any executor (getServiceList with the published metadata)", async () => {
    const b = broker();
    b.createService({ name: "orders", mixins: [ClawfleetTools], actions: { lookup: { ...echo, tool: { description: "d", input: { type: "object" } } } } });
    await b.start();
    const listed = b.registry.getServiceList({ onlyAvailable: true, withActions: true }) as unknown as Array<{ name: string; metadata: { clawfleet?: ToolServiceMetadata }; actions: Record<string, { tool?: unknown }> }>;
    const orders = listed.find((s) => s.name === "orders");
    expect(orders?.metadata.clawfleet?.tools.map((t) => t.name)).toEqual(["lookup"]);
    // The block on the action is the checked, plain form: it goes over the wire with the node's INFO.
    expect(JSON.parse(JSON.stringify(orders?.actions["orders.lookup"]?.tool))).toMatchObject({ name: "lookup", inputSchema: { type: "object" } });
    expect(await b.call("orders.lookup", { a: 1 })).toEqual({ a: 1 });
  });

  it("mixin - a zod input's handler gets the parsed params; what only zod can say fails as the tool's own error", async () => {
    const b = broker();
    const input = () =>
      z
        .object({ from: z.number(), to: z.number(), unit: z.enum(["km", "mi"]).default("km") })
        .refine((v) => v.to > v.from, { message: "to must be past from", path: ["to"] });
    b.createService({ name: "trips", mixins: [ClawfleetTools], actions: { plan: { tool: { description: "Plans a trip.", input }, handler: (ctx: { params: unknown }) => ctx.params } } });
    await b.start();
    expect(await b.call("trips.plan", { from: 1, to: 5 })).toEqual({ from: 1, to: 5, unit: "km" });
    await expect(b.call("trips.plan", { from: 5, to: 1 })).rejects.toThrow("invalid input: to: to must be past from");
  });

  it("mixin - the same schema object creates a service twice (nothing of the user's is changed)", () => {
    const schema = { name: "orders", mixins: [ClawfleetTools], actions: { lookup: { ...echo, tool: { description: "d", input: () => z.object({ id: z.string() }) } } } };
    broker().createService(schema);
    const again = broker().createService(schema) as unknown as { metadata: { clawfleet: ToolServiceMetadata } };
    expect(again.metadata.clawfleet.tools[0]?.inputSchema).toMatchObject({ required: ["id"] });
  });
});

describe("ClawfleetTools - a tool block is checked when the service is created", () => {
  const input = { type: "object" };
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["no description", { input }, /service orders, action a: tool\.description: must say what the tool does/],
    ["no input", { description: "d" }, /tool\.input: is required/],
    ["a field that is no tool field", { description: "d", input, sideeffect: true }, /tool\.sideeffect: is not a field of a tool block/],
    ["an input that is not an object schema", { description: "d", input: { type: "string" } }, /tool\.input: an input schema describes an object/],
    ["an input that is not a valid JSON Schema", { description: "d", input: { type: "object", properties: { a: { type: "strnig" } } } }, /tool\.input: not a valid JSON Schema/],
    ["a zod schema written directly", { description: "d", input: z.object({ a: z.string() }) }, /tool\.input: a zod schema written directly .* input: \(\) => z\.object/],
    ["a function that returns no zod schema", { description: "d", input: () => ({ type: "object" }) }, /tool\.input: its function must return a zod schema/],
    ["a zod schema with no JSON Schema form", { description: "d", input: () => z.object({ at: z.date() }) }, /tool\.input: the zod schema has no JSON Schema form/],
    ["a side effect that is no boolean", { description: "d", input, sideEffect: "yes" }, /tool\.sideEffect: must be true or false/],
    ["a timeout past the planner's", { description: "d", input, timeoutMs: 600_000 }, /tool\.timeoutMs: must be an integer number of milliseconds in 1\.\.110000/],
    ["a name the Messages API refuses", { description: "d", input, name: "route.order" }, /tool\.name: "route\.order" is not a tool name/],
  ];
  for (const [what, tool, message] of cases) {
    it(`mixin - refuses ${what}, naming the service, the action and the field`, () => {
      expect(refusal({ actions: { a: { ...echo, tool } } })).toMatch(message);
    });
  }

  it("mixin - an action whose name is no tool name must set tool.name", () => {
    expect(refusal({ actions: { "orders.route": { ...echo, tool: { description: "d", input } } } })).toMatch(/tool\.name: "orders\.route" is not a tool name .*; set tool\.name/);
  });

  it("mixin - refuses two actions under one tool name", () => {
    const tool = { description: "d", input, name: "same" };
    expect(refusal({ actions: { a: { ...echo, tool }, b: { ...echo, tool } } })).toMatch(/action b: tool\.name "same" is also the tool name of action a/);
  });

  it("mixin - refuses a tool action other nodes cannot call", () => {
    expect(refusal({ actions: { a: { ...echo, visibility: "protected", tool: { description: "d", input } } } })).toMatch(/visibility must be "published"/);
  });

  it("mixin - refuses an unknown clawfleet setting", () => {
    expect(refusal({ clawfleet: { migration: "./m" }, actions: {} })).toMatch(/service orders: clawfleet\.migration is not a setting/);
  });
});

describe("ClawfleetTools - the node's database", () => {
  let opened: OpenedStore | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await opened?.close();
    opened = undefined;
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  function migrationsDir(files: Record<string, string>): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-mixin-"));
    dirs.push(dir);
    for (const [name, sql] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), sql);
    return dir;
  }

  it("mixin - outside a Clawfleet node, this.clawfleet.database() says what to do instead", async () => {
    const b = broker();
    const svc = b.createService({ name: "orders", mixins: [ClawfleetTools], actions: {} }) as unknown as { clawfleet: { database(): Promise<unknown> } };
    await expect(svc.clawfleet.database()).rejects.toThrow(/service orders: the node's database is only lent to services run by a Clawfleet node/);
  });

  it("mixin - outside a node, a service with migrations does not start", async () => {
    const b = broker();
    b.createService({ name: "orders", mixins: [ClawfleetTools], clawfleet: { migrations: migrationsDir({ "001_a.sql": "SELECT 1;" }) }, actions: {} });
    await expect(b.start()).rejects.toThrow(/Clawfleet node/);
  });

  it("mixin - in a node, the service's migrations are applied once, in a history of its own, and the pool is the node's", async () => {
    opened = await openStore({ dataDir: "memory://" });
    const pool = opened.pool;
    // Named like one of Clawfleet's own: the service's history is its own, so it is applied all the same.
    const dir = migrationsDir({ "001_tasks.sql": "CREATE TABLE order_notes (id text PRIMARY KEY, note text NOT NULL);" });
    const start = async () => {
      const b = broker();
      attachNodeHandle(b, { mode: "embedded", database: async () => pool });
      const svc = b.createService({
        name: "notes",
        mixins: [ClawfleetTools],
        clawfleet: { migrations: dir },
        actions: {
          add: {
            tool: { description: "Adds a note.", input: { type: "object" } },
            async handler(this: { clawfleet: { database(): Promise<typeof pool> } }, ctx: { params: { id: string; note: string } }) {
              const db = await this.clawfleet.database();
              await db.query("INSERT INTO order_notes (id, note) VALUES ($1, $2)", [ctx.params.id, ctx.params.note]);
              return { ok: true };
            },
          },
        },
      });
      await b.start();
      return { b, svc };
    };
    const first = await start();
    await first.b.call("notes.add", { id: "n1", note: "fragile" });
    await first.b.stop();
    await start(); // a second start (a replica, a restart) finds nothing to apply
    const { rows } = await pool.query<{ namespace: string; name: string }>("SELECT namespace, name FROM tool_service_migrations");
    expect(rows).toEqual([{ namespace: "notes", name: "001_tasks.sql" }]);
    expect((await pool.query("SELECT note FROM order_notes")).rows).toEqual([{ note: "fragile" }]);

    fs.writeFileSync(path.join(dir, "001_tasks.sql"), "CREATE TABLE order_notes (id text);");
    await expect(start()).rejects.toThrow(/notes: migration 001_tasks\.sql changed after it was applied/);
  });
});
