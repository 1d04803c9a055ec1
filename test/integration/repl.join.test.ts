/**
 * repl - `clawfleet repl` joins a running cluster: its own broker, with no role,
 * reaches a distributed node over a real NATS transporter (TRANSPORTER and
 * CLAWFLEET_NAMESPACE only) and runs the cluster's actions from typed lines.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, type ClawfleetNode } from "../../app/node";
import { startRepl, type ReplSession } from "../../app/repl";
import { loadConfig, loadReplConfig } from "../../src/config";
import { cleanRedis, createTestDatabase, hasService, NATS_TEST_URL, REDIS_TEST_URL, uniqueId, type TestDatabase } from "../helpers/services";

const distributed = hasService("nats") && hasService("redis") && hasService("postgres");

describe.skipIf(!distributed)("repl - joining a cluster over NATS", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "repl-join-"));
  const namespace = uniqueId("repl");
  let db: TestDatabase;
  let node: ClawfleetNode;
  let repl: ReplSession;
  let lines: string[] = [];
  const run = async (line: string) => {
    lines = [];
    await repl.exec(line);
    return lines.join("\n");
  };

  beforeAll(async () => {
    fs.writeFileSync(path.join(dir, "echo.md"), ["---", "name: echo", "tiers:", "  main: {model: claude-haiku-5-5, max_tokens: 256}", "default_tier: main", "---", "Be brief."].join("\n"));
    db = await createTestDatabase();
    node = await startNode(
      loadConfig({ PORT: "0", TRANSPORTER: NATS_TEST_URL, REDIS_URL: REDIS_TEST_URL, DATABASE_URL: db.url, CLAWFLEET_NAMESPACE: namespace, CLAWFLEET_PROMPTS_DIR: dir, LOG_LEVEL: "error" }),
    );
    // What an operator sets: the cluster's transporter and namespace, nothing else.
    repl = await startRepl(loadReplConfig({ TRANSPORTER: NATS_TEST_URL, CLAWFLEET_NAMESPACE: namespace, LOG_LEVEL: "error" }), { out: (l) => lines.push(l) });
    await repl.broker.waitForServices(["intake", "checkpoint", "executor"], 15_000);
  }, 90_000);

  afterAll(async () => {
    await repl?.close();
    await node?.stop();
    await db?.drop();
    await cleanRedis(REDIS_TEST_URL, namespace);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("repl - a node of its own, without roles, runs the cluster's actions", async () => {
    expect(repl.broker.nodeID).not.toBe(node.broker.nodeID);
    expect(repl.broker.services.filter((s) => !s.name.startsWith("$"))).toHaveLength(0);
    expect(await run("agents")).toMatch(/^echo +[0-9a-f]{12} +main: claude-haiku-5-5/);
    const id = /^queued ([0-9a-f-]{36})$/.exec(await run(`submit echo '"hi"'`))?.[1] as string;
    expect(id).toBeDefined();
    await expect.poll(async () => run(`task ${id}`), { timeout: 20_000 }).toContain(`${id}  echo  succeeded`);
  });
});
