/**
 * cli - the `clawfleet` client commands as a user runs them: real child
 * processes of bin/clawfleet.js against an embedded node with authentication
 * on (PGlite in memory, the simulated model). Keys are issued, listed and
 * revoked through the CLI; tasks submitted and followed to their end, read,
 * listed page by page; and every failure ends with its exit code.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, type ClawfleetNode } from "../../app/node";
import { loadConfig } from "../../src/config";
import { uniqueId } from "../helpers/services";

const ROOT = path.resolve(__dirname, "..", "..");
const BIN = path.join(ROOT, "bin", "clawfleet.js");
const ADMIN_KEY = `cli-admin-${uniqueId("")}-${uniqueId("")}`;
const SLOW = 180_000;
/** A task id no task has. */
const UNKNOWN_ID = "0b7c6f7e-6a0e-4d8e-9d55-0a3f2b1c9e01";

let node: ClawfleetNode;
let base: string;
let promptsDir: string;
/** A key of tenant `default` with submit, read and operate, issued by the CLI in the first test. */
let userKey = "";
let userKeyId = "";

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** `clawfleet <args>` as a child process; CLAWFLEET_URL is the test node unless `env` says otherwise. */
function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, CLAWFLEET_URL: base, CLAWFLEET_API_KEY: undefined, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out, err }));
  });
}

const asUser = () => ({ CLAWFLEET_API_KEY: userKey });

/** Two agents without tools: `echo` answers (succeeds), `short` is over its one-step budget (fails). */
function writePrompts(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cli-prompts-"));
  const tiers = ["tiers:", "  main: {model: claude-haiku-5-5, max_tokens: 256}"];
  fs.writeFileSync(path.join(dir, "echo.md"), ["---", "name: echo", ...tiers, "default_tier: main", "---", "Answer in one line."].join("\n"));
  fs.writeFileSync(
    path.join(dir, "short.md"),
    ["---", "name: short", ...tiers, "default_tier: main", "router: {classify_tier: main}", "budgets: {max_steps: 1}", "---", "Too short a budget."].join("\n"),
  );
  return dir;
}

/** A port nothing listens on: one the OS just handed out and took back. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const lines = (text: string) => text.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  promptsDir = writePrompts();
  node = await startNode(
    loadConfig({
      CLAWFLEET_PROMPTS_DIR: promptsDir,
      PORT: "0",
      CLAWFLEET_DATA_DIR: "memory://",
      CLAWFLEET_NAMESPACE: uniqueId("cli"),
      CLAWFLEET_AUTH: "on",
      CLAWFLEET_ADMIN_KEY: ADMIN_KEY,
      // Each model call takes a second, so a followed task is still running when the CLI first reads it
      // (at zero latency a one-step task can end before that, and is then shown from its stored steps).
      CLAWFLEET_SIM_LATENCY_MS: "1000",
      LOG_LEVEL: "error",
    }),
  );
  base = `http://127.0.0.1:${node.port}`;
}, 120_000);

afterAll(async () => {
  await node?.stop();
  if (promptsDir) fs.rmSync(promptsDir, { recursive: true, force: true });
});

describe("cli - keys, with authentication on", () => {
  it(
    "creates a key with the admin key, and lists it without its secret",
    async () => {
      const created = await cli(["keys", "create", "--tenant", "default", "--scopes", "submit,read,operate", "--json"], { CLAWFLEET_API_KEY: ADMIN_KEY });
      expect(created.code, created.err).toBe(0);
      const key = JSON.parse(created.out) as { id: string; key: string; scopes: string[] };
      expect(key.scopes).toEqual(["submit", "read", "operate"]);
      expect(key.key).toMatch(/^cfk_/);
      userKey = key.key;
      userKeyId = key.id;

      const listed = await cli(["keys", "ls"], { CLAWFLEET_API_KEY: ADMIN_KEY });
      expect(listed.code, listed.err).toBe(0);
      expect(listed.out).toMatch(/^ID\s+TENANT\s+SCOPES/);
      expect(listed.out).toMatch(new RegExp(`^${key.id}\\s+default\\s+submit,read,operate\\s`, "m"));
      expect(listed.out).not.toContain(key.key);
    },
    SLOW,
  );

  it(
    "refuses a request without a key (exit 1, the API's error on stderr), and --key overrides the environment",
    async () => {
      const [none, flag] = await Promise.all([cli(["tasks", "ls"]), cli(["tasks", "ls", "--json", "--key", userKey], { CLAWFLEET_API_KEY: "cfk_not_a_key" })]);
      expect(none.code).toBe(1);
      expect(none.err).toMatch(/^error: unauthenticated: /);
      expect(none.out).toBe("");
      expect(flag.code, flag.err).toBe(0);
    },
    SLOW,
  );
});

describe("cli - tasks", () => {
  let echoId = "";

  it(
    "submit --wait follows the task to its end as JSON lines, and exits 0 when it succeeded",
    async () => {
      const r = await cli(["tasks", "submit", "echo", "Hello from the CLI", "--wait"], asUser());
      expect(r.code, r.err).toBe(0);
      const out = lines(r.out);
      expect(out[0]).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: "queued" });
      echoId = String(out[0]?.id);
      const steps = out.filter((l) => l.kind !== undefined);
      expect(steps.map((s) => s.step)).toEqual([1]);
      // As the live stream sends a step (with its task's id), not as a poll of /steps would have it.
      expect(steps[0]?.task_id).toBe(echoId);
      expect(out.at(-1)).toMatchObject({ id: echoId, status: "succeeded", input: "Hello from the CLI" });
    },
    SLOW,
  );

  it(
    "submit --wait exits 1 when the task failed",
    async () => {
      const r = await cli(["tasks", "submit", "short", "{\"q\": 1}", "--wait"], asUser());
      expect(r.code, r.err).toBe(1);
      expect(lines(r.out).at(-1)).toMatchObject({ status: "failed" });
    },
    SLOW,
  );

  it(
    "get prints the task for a person, and with --json exactly what the API answers",
    async () => {
      const [human, json, api] = await Promise.all([
        cli(["tasks", "get", echoId], asUser()),
        cli(["tasks", "get", echoId, "--json"], asUser()),
        fetch(`${base}/v1/tasks/${echoId}`, { headers: { Authorization: `Bearer ${userKey}` } }).then((r) => r.text()),
      ]);
      expect(human.code, human.err).toBe(0);
      expect(human.out).toMatch(new RegExp(`^id +${echoId}$`, "m"));
      expect(human.out).toMatch(/^status +succeeded$/m);
      expect(human.out).toMatch(/^input +Hello from the CLI$/m);
      expect(json.code, json.err).toBe(0);
      expect(json.out).toBe(`${api}\n`);
    },
    SLOW,
  );

  it(
    "steps prints one line per step",
    async () => {
      const r = await cli(["tasks", "steps", echoId], asUser());
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/^#1 {2}llm {3}claude-haiku-5-5 \(main\) {2}end_turn {2}\d+\/\d+ tok/);
    },
    SLOW,
  );

  it(
    "ls pages through the tenant's tasks newest first, the next page's command on stderr",
    async () => {
      const submitted: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await fetch(`${base}/v1/tasks`, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${userKey}` },
          body: JSON.stringify({ agent: "echo", input: `page test ${i}` }),
        });
        submitted.push(((await r.json()) as { id: string }).id);
      }
      const newestFirst = [...submitted.reverse(), echoId];

      const first = await cli(["tasks", "ls", "--agent", "echo", "--limit", "4"], asUser());
      expect(first.code, first.err).toBe(0);
      const rows = first.out.trimEnd().split("\n");
      expect(rows[0]).toMatch(/^ID\s+AGENT\s+STATUS\s+STEPS\s+TOKENS\s+COST\s+CREATED$/);
      expect(rows.slice(1).map((r) => r.split(/\s+/)[0])).toEqual(newestFirst.slice(0, 4));
      const more = /^more: clawfleet tasks ls --agent echo --limit 4 --cursor (\S+)$/m.exec(first.err);
      expect(more, first.err).not.toBeNull();

      const second = await cli(["tasks", "ls", "--agent", "echo", "--limit", "4", "--cursor", more?.[1] ?? "", "--json"], asUser());
      expect(second.code, second.err).toBe(0);
      const page = JSON.parse(second.out) as { tasks: Array<{ id: string }>; next_cursor: string | null };
      expect(page.tasks.map((t) => t.id)).toEqual(newestFirst.slice(4));
      expect(page.next_cursor).toBeNull();
      expect(second.err).toBe("");
    },
    SLOW,
  );
});

describe("cli - exit codes", () => {
  it(
    "exits 1 for an unknown task (404) and for a query the API refuses (422), 2 for a usage error, 3 when nothing listens",
    async () => {
      const port = await closedPort();
      const [missing, invalid, usage, refused] = await Promise.all([
        cli(["tasks", "get", UNKNOWN_ID], asUser()),
        cli(["tasks", "ls", "--status", "sleeping"], asUser()),
        cli(["tasks", "get"], asUser()),
        cli(["tasks", "ls"], { ...asUser(), CLAWFLEET_URL: `http://127.0.0.1:${port}` }),
      ]);
      expect(missing.code).toBe(1);
      expect(missing.err).toBe(`error: task_not_found: no task ${UNKNOWN_ID}\n`);
      expect(invalid.code).toBe(1);
      expect(invalid.err).toMatch(/^error: validation_error: .*status/);
      expect(usage.code).toBe(2);
      expect(usage.err).toMatch(/usage: clawfleet tasks get <id>/);
      expect(refused.code).toBe(3);
      expect(refused.err).toBe(`error: cannot connect to http://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}\n`);
    },
    SLOW,
  );

  it(
    "a revoked key stops working at once",
    async () => {
      const revoked = await cli(["keys", "revoke", userKeyId], { CLAWFLEET_API_KEY: ADMIN_KEY });
      expect(revoked.code, revoked.err).toBe(0);
      expect(revoked.out).toMatch(new RegExp(`^${userKeyId} revoked \\d{4}-`));
      const after = await cli(["tasks", "ls"], asUser());
      expect(after.code).toBe(1);
      expect(after.err).toMatch(/^error: unauthenticated: /);
    },
    SLOW,
  );
});
