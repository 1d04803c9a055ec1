/**
 * newcomer - README "Your own agent in five minutes", performed: a project in a folder of its own (under
 * the OS temp dir, no path into this checkout) installs Clawfleet from the `npm pack` tarball, adds one
 * agent file, one tool service and one MCP server, and runs them with `npx clawfleet start`: embedded,
 * then distributed (its tool service as its own process, SERVICES=tools, beside a process running the
 * roles, over the real NATS, Redis and Postgres).
 *
 * The tarball is packed from dist/ as it is: CI builds before it tests (.ci/run); anywhere else a missing
 * or stale build is rebuilt here first. The files below are the README's, verbatim (asserted).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, getJson, ROOT, submitTask, waitForTasks } from "../../testkit/cluster";
import { createScratch, hasService, type Scratch } from "../helpers/services";

const run = promisify(execFile);

/** The project's files, exactly as the README shows them. */
const FILES: Record<string, string> = {
  "prompts/hello.md": `---
name: hello
description: Greets someone by name, then shouts the greeting.
tools: [greet, letters__shout]
mcp_servers:
  letters:
    command: node
    args: [../mcp/server.mjs]
tiers:
  default:
    model: claude-haiku-4-5
    max_tokens: 1024
default_tier: default
---
Greet the person the task names with \`greet\`, then shout the greeting with
\`letters__shout\`, and answer with the shouted greeting.
`,
  "services/greeter.service.js": `const { ClawfleetTools } = require("clawfleet/mixins");

module.exports = {
  name: "greeter",
  mixins: [ClawfleetTools],
  actions: {
    greet: {
      tool: {
        description: "Greets a person by name.",
        input: {
          type: "object",
          properties: { name: { type: "string", description: "Who to greet", examples: ["Ada"] } },
          required: ["name"],
        },
      },
      handler(ctx) {
        return { greeting: \`Hello, \${ctx.params.name}!\`, node: this.broker.nodeID };
      },
    },
  },
};
`,
  "mcp/server.mjs": `import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const server = new McpServer({ name: "letters", version: "1.0.0" });

server.registerTool(
  "shout",
  {
    description: "Writes a text in capital letters.",
    inputSchema: { text: z.string().describe("The text to shout") },
  },
  async ({ text }) => ({ content: [{ type: "text", text: \`\${text.toUpperCase()}!\` }] }),
);

await server.connect(new StdioServerTransport());
`,
};

/** What the README installs next to the tarball. */
const PEERS = ["@modelcontextprotocol/sdk", "zod"];
const INSTALL_FLAGS = ["--prefer-offline", "--no-audit", "--no-fund"];
/** Every role but `tools`: the process beside the project's tool service. */
const ROLES = "api,intake,planner,executor,rate-gateway,checkpoint,metrics";
const SECTION = "## Your own agent in five minutes";

interface Step {
  step: number;
  kind: "llm" | "tool";
  tool?: string;
  ok?: boolean;
  output?: unknown;
}

interface Started {
  name: string;
  proc: ChildProcess;
  port: number;
  output(): string;
  /**
   * When every process of the group is gone: npx runs the node in a child that holds the same pipes, and npx
   * itself dies of a signal without waiting for it, so the pipes closing is what says the node has exited.
   */
  closed: Promise<void>;
}

/** Only the basics of this environment: the project sees nothing of the checkout's settings. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "LANG", "TMPDIR", "npm_config_cache", "npm_config_registry"]) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return env;
}

async function sh(cmd: string, args: string[], cwd: string, timeoutMs = 300_000): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { cwd, env: baseEnv(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} (in ${cwd}) failed: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

/** `npx clawfleet start` in the project, in a process group of its own (npx runs the bin in a child). */
async function clawfleetStart(name: string, cwd: string, env: Record<string, string>): Promise<Started> {
  const port = await freePort();
  const proc = spawn("npx", ["clawfleet", "start"], {
    cwd,
    env: { ...baseEnv(), LOG_LEVEL: "info", CLAWFLEET_LOG_FORMAT: "json", ...env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  proc.stdout?.on("data", (b: Buffer) => (out += b.toString()));
  proc.stderr?.on("data", (b: Buffer) => (out += b.toString()));
  const closed = new Promise<void>((resolve) => proc.once("close", () => resolve()));
  const started: Started = { name, proc, port, output: () => out, closed };
  let gone = false;
  void closed.then(() => (gone = true));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (gone) throw new Error(`${name} exited during start-up:\n${out.slice(-4000)}`);
    const status = await fetch(`http://127.0.0.1:${port}/health/ready`).then((r) => r.status, () => 0);
    if (status === 200) return started;
    if (Date.now() > deadline) {
      await stop(started, "SIGKILL");
      throw new Error(`${name} not ready after 120 s:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Signals the whole group (npx and the node it runs); resolves when the node is gone. */
async function stop(p: Started | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (!p || p.proc.pid === undefined) return;
  const pid = p.proc.pid;
  const kill = (s: NodeJS.Signals) => {
    try {
      process.kill(-pid, s);
    } catch {
      // the group is gone already
    }
  };
  kill(signal);
  const t = setTimeout(() => kill("SIGKILL"), 30_000);
  await p.closed;
  clearTimeout(t);
}

/** The node's last line on a graceful stop (app/node.ts). */
const STOPPED = '"event":"node.stopped"';

/** Submits the README's task (`{"agent": "hello", "input": "Greet Ada"}`) and waits for it; answers the task and its steps. */
async function greetAda(base: string): Promise<{ status: string; result: unknown; steps: Step[] }> {
  const submitted = await submitTask(base, { agent: "hello", input: "Greet Ada" });
  expect(submitted.status).toBe(202);
  const done = await waitForTasks(base, [submitted.id], 60_000);
  const task = done.get(submitted.id);
  expect(task, "the task reached a final state").toBeDefined();
  const { steps } = await getJson<{ steps: Step[] }>(`${base}/v1/tasks/${submitted.id}/steps`);
  return { status: task?.status ?? "?", result: task?.result, steps };
}

/** Both tools ran, each once and fine, and the model had the last word. */
function expectBothTools(steps: Step[]): Step {
  const tools = steps.filter((s) => s.kind === "tool");
  expect(tools.map((s) => s.tool).sort(), JSON.stringify(steps)).toEqual(["greet", "letters__shout"]);
  for (const t of tools) expect(t.ok, `${t.tool}: ${JSON.stringify(t.output)}`).toBe(true);
  expect(steps.at(-1)?.kind).toBe("llm");
  const greet = tools.find((s) => s.tool === "greet") as Step;
  expect(greet.output).toMatchObject({ greeting: "Hello, Ada!" });
  const shout = tools.find((s) => s.tool === "letters__shout") as Step;
  expect(JSON.stringify(shout.output)).toMatch(/!/);
  return greet;
}

describe("newcomer: a project of its own, from the packed tarball", () => {
  const scratchRoot = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-newcomer-"));
  const project = path.join(scratchRoot, "my-agents");
  let tarball = "";
  let tarballFiles: string[] = [];

  beforeAll(async () => {
    // The build is what gets packed: CI's is fresh (.ci/run builds before the tests); a local one may not be.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const entry = require(path.join(ROOT, "bin", "entry.js")) as { useCompiled(): boolean };
    if (!entry.useCompiled()) await sh("npm", ["run", "build"], ROOT);
    // README: mkdir my-agents && cd my-agents && npm init -y, the tarball copied in, npm install ./<tarball> <peers>
    fs.mkdirSync(project);
    await sh("npm", ["init", "-y"], project);
    const packed = JSON.parse(await sh("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", project], ROOT)) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    tarball = packed[0]?.filename ?? "";
    tarballFiles = (packed[0]?.files ?? []).map((f) => f.path);
    await sh("npm", ["install", `./${tarball}`, ...PEERS, ...INSTALL_FLAGS], project, 600_000);
    for (const [file, text] of Object.entries(FILES)) {
      fs.mkdirSync(path.join(project, path.dirname(file)), { recursive: true });
      fs.writeFileSync(path.join(project, file), text);
    }
  }, 900_000);

  afterAll(() => {
    fs.rmSync(scratchRoot, { recursive: true, force: true });
  });

  it("the README shows exactly the files and commands this test runs", () => {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const start = readme.indexOf(SECTION);
    expect(start, `README has a section "${SECTION}"`).toBeGreaterThanOrEqual(0);
    const section = readme.slice(start, readme.indexOf("\n## ", start + SECTION.length));
    for (const [file, text] of Object.entries(FILES)) expect(section, file).toContain(text);
    expect(section).toContain("npm init -y");
    expect(section).toContain(`npm install ./${tarball} ${PEERS.join(" ")}`);
    expect(section).toContain("npx clawfleet start");
    expect(section).toContain(`-d '{"agent": "hello", "input": "Greet Ada"}'`);
    expect(section).toContain(`SERVICES=tools`);
    expect(section).toContain(`SERVICES=${ROLES}`);
  });

  it("the tarball holds the package and nothing else, and only the public entry points can be imported", async () => {
    expect(tarballFiles).toContain("dist/app/index.js");
    expect(tarballFiles).toContain("dist/app/index.d.ts");
    expect(tarballFiles).toContain("dist/mixins/index.js");
    expect(tarballFiles).toContain("bin/clawfleet.js");
    expect(tarballFiles.some((f) => f.startsWith("src/store/migrations/") && f.endsWith(".sql"))).toBe(true);
    expect(tarballFiles.some((f) => f.endsWith(".lua"))).toBe(true);
    const stray = tarballFiles.filter((f) => /^(test|bench|testkit|examples|prompts|k8s|deploy|ops|\.ci|scripts)\/|Dockerfile|compose\.|\.ts$/.test(f) && !f.endsWith(".d.ts"));
    expect(stray).toEqual([]);

    // Installed as a copy in the project, not a link into this checkout.
    const installed = path.join(project, "node_modules", "clawfleet");
    expect(fs.lstatSync(installed).isSymbolicLink()).toBe(false);
    const probe = `
      const c = require("clawfleet");
      const m = require("clawfleet/mixins");
      let deep = "importable";
      try { require("clawfleet/dist/src/config"); } catch (e) { deep = e.code; }
      console.log(JSON.stringify({ main: require.resolve("clawfleet"), api: Object.keys(c).sort(), mixins: Object.keys(m), deep }));`;
    const seen = JSON.parse(await sh("node", ["-e", probe], project)) as { main: string; api: string[]; mixins: string[]; deep: string };
    expect(seen.main.startsWith(installed)).toBe(true);
    expect(seen.api).toEqual(expect.arrayContaining(["defineAgent", "defineTool", "startNode"]));
    expect(seen.mixins).toContain("ClawfleetTools");
    expect(seen.deep).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED");
  });

  it("embedded: npx clawfleet start runs the agent, calling the tool service and the MCP server", async () => {
    const node = await clawfleetStart("embedded", project, {});
    try {
      expect(node.output()).toContain("Agents: hello.");
      const { status, steps } = await greetAda(`http://127.0.0.1:${node.port}`);
      expect(status, node.output().slice(-3000)).toBe("succeeded");
      expectBothTools(steps);
    } finally {
      await stop(node);
    }
    expect(node.output()).toContain(STOPPED);
  }, 180_000);

  const servicesUp = hasService("postgres") && hasService("redis") && hasService("nats");
  if (!servicesUp) {
    const line = "!".repeat(78);
    process.stderr.write(
      `\n${line}\n!!  newcomer, distributed: SKIPPED, Postgres, Redis or NATS is not reachable at 127.0.0.1.\n` +
        `!!  The embedded half still runs. (With CI=true a missing service fails the run instead.)\n${line}\n\n`,
    );
  }

  describe.skipIf(!servicesUp)("distributed", () => {
    let scratch: Scratch;
    let tools: Started | undefined;
    let roles: Started | undefined;

    beforeAll(async () => {
      scratch = await createScratch("newcomer");
    }, 60_000);

    afterAll(async () => {
      await stop(roles);
      await stop(tools);
      await scratch?.remove();
    }, 90_000);

    it("the tool service runs as its own process (SERVICES=tools) and the roles call it across the cluster", async () => {
      // The tool service first: the roles' process then finds it in the registry as it starts.
      tools = await clawfleetStart("tools", project, { ...scratch.env("tools"), CLAWFLEET_NODE_ID: "newcomer-tools" });
      roles = await clawfleetStart("roles", project, { ...scratch.env(ROLES), CLAWFLEET_NODE_ID: "newcomer-roles" });
      const { status, steps } = await greetAda(`http://127.0.0.1:${roles.port}`);
      expect(status, `${roles.output().slice(-3000)}\n--- tools:\n${tools.output().slice(-2000)}`).toBe("succeeded");
      const greet = expectBothTools(steps);
      // Served by the tools process, not by the roles' (which loads no project service).
      expect(greet.output).toMatchObject({ node: "newcomer-tools" });
      await stop(roles);
      await stop(tools);
      expect(roles.output()).toContain(STOPPED);
      expect(tools.output()).toContain(STOPPED);
    }, 240_000);
  });
});
