/**
 * userProject - what a project of its own hands Clawfleet: prompts folders (several, globs), its service
 * files (the `tools` role), agents and tools defined in code, and `startNode`'s options, each failing at
 * start-up with a message that names the file, the option or the variable.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { loadAgents } from "../../app/agents";
import { configFromOptions } from "../../app/start";
import { loadUserServices } from "../../app/userServices";
import { defineAgent } from "../../src/agent/definition";
import { loadConfig, ROLES } from "../../src/config";
import { defineTool } from "../../src/tools/define";
import { ROOT } from "../../testkit/cluster";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-userproject-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(file: string, text: string): string {
  const full = path.join(dir, file);
  fs.mkdirSync(path.dirname(full), { recursive: true });
  fs.writeFileSync(full, text);
  return full;
}

const agentFile = (name: string) => `---
name: ${name}
tiers:
  default: {model: claude-haiku-4-5, max_tokens: 256}
default_tier: default
---
Be brief.
`;

const DISTRIBUTED = { TRANSPORTER: "nats://127.0.0.1:4222", REDIS_URL: "redis://127.0.0.1:6379", DATABASE_URL: "postgres://u@127.0.0.1/db" };

describe("prompts folders", () => {
  it("reads a path list whose entries may be globs; a glob names only folders that exist", () => {
    write("a/prompts/alpha.md", agentFile("alpha"));
    write("b/prompts/beta.md", agentFile("beta"));
    write("solo/gamma.md", agentFile("gamma"));
    const config = loadConfig({ CLAWFLEET_PROMPTS_DIR: ["*/prompts", "solo", "none-*/prompts"].join(path.delimiter) }, dir);
    expect(config.promptsDirs).toEqual([path.join(dir, "a/prompts"), path.join(dir, "b/prompts"), path.join(dir, "solo")]);
    expect(loadAgents(config).list().map((a) => a.name)).toEqual(["alpha", "beta", "gamma"]);
  });

  it("defaults to ./prompts of the working directory", () => {
    expect(loadConfig({}, dir).promptsDirs).toEqual([path.join(dir, "prompts")]);
  });

  it("refuses an agent defined twice, naming both places", () => {
    write("c/prompts/alpha.md", agentFile("alpha"));
    const config = loadConfig({ CLAWFLEET_PROMPTS_DIR: "{a,c}/prompts" }, dir);
    expect(() => loadAgents(config)).toThrow(/agent "alpha" is defined twice: in .*a\/prompts\/alpha\.md and in .*c\/prompts\/alpha\.md/);
    const code = defineAgent({ name: "alpha", tiers: { d: { model: "m", max_tokens: 10 } }, default_tier: "d", prompt: "p" });
    expect(() => loadAgents(loadConfig({ CLAWFLEET_PROMPTS_DIR: "a/prompts" }, dir), [code])).toThrow(/agents: agent "alpha" is defined twice/);
  });

  it("a missing folder is an error where agents are looked up, not for a tools-only node nor with agents in code", () => {
    const missing = loadConfig({ CLAWFLEET_PROMPTS_DIR: "nowhere" }, dir);
    expect(() => loadAgents(missing)).toThrow(/CLAWFLEET_PROMPTS_DIR: folder .*nowhere does not exist/);
    const code = defineAgent({ name: "coded", tiers: { d: { model: "m", max_tokens: 10 } }, default_tier: "d", prompt: "p" });
    expect(loadAgents(missing, [code]).list().map((a) => a.name)).toEqual(["coded"]);
    const toolsOnly = loadConfig({ ...DISTRIBUTED, SERVICES: "tools", CLAWFLEET_PROMPTS_DIR: "nowhere" }, dir);
    expect(loadAgents(toolsOnly).list()).toEqual([]);
  });
});

describe("the tools role and the project's service files", () => {
  it("`tools` is a role: part of every role, and a process of its own when distributed", () => {
    expect(ROLES).toContain("tools");
    expect(loadConfig({}, dir).services).toContain("tools");
    expect(loadConfig({ ...DISTRIBUTED, SERVICES: "tools" }, dir).services).toEqual(["tools"]);
  });

  it("finds ./services/*.service.{js,cjs,mjs} by default; never Clawfleet's own services/ folder", () => {
    const files = [write("services/a.service.js", ""), write("services/b.service.mjs", ""), write("services/c.service.cjs", "")];
    write("services/helper.js", "");
    expect(loadConfig({}, dir).userServices.files).toEqual(expect.arrayContaining(files));
    expect(loadConfig({}, dir).userServices.files).not.toContain(path.join(dir, "services/helper.js"));
    // Run from this checkout, ./services holds the roles (*.service.ts): none of them is a project service.
    const own = loadConfig({}, ROOT).userServices;
    expect(own.explicit).toBe(false);
    expect(own.files).toEqual([]);
  });

  it("CLAWFLEET_USER_SERVICES names files by list and glob; `none` names none", () => {
    const config = loadConfig({ CLAWFLEET_USER_SERVICES: ["services/a.service.js", "services/*.service.{mjs,cjs}"].join(path.delimiter) }, dir);
    expect(config.userServices.files.map((f) => path.basename(f))).toEqual(["a.service.js", "b.service.mjs", "c.service.cjs"]);
    expect(loadConfig({ CLAWFLEET_USER_SERVICES: "none" }, dir).userServices.files).toEqual([]);
  });

  it("loads CommonJS, ESM and function exports as services", async () => {
    write("svc/one.service.cjs", "module.exports = { name: 'one', actions: { hi: () => 'one' } };");
    write("svc/two.service.mjs", "export default { name: 'two', actions: {} };");
    write("svc/three.service.cjs", "module.exports = (broker) => ({ name: 'three' });");
    const config = loadConfig({ CLAWFLEET_USER_SERVICES: "svc/*.service.{cjs,mjs}" }, dir);
    const loaded = await loadUserServices(config, dir);
    expect(loaded.map((s) => path.basename(s.file))).toEqual(["one.service.cjs", "three.service.cjs", "two.service.mjs"]);
    expect(loaded.map((s) => (typeof s.service === "function" ? "function" : (s.service as { name: string }).name))).toEqual(["one", "function", "two"]);
  });

  it("a file that fails to load, or exports no service, stops start-up naming the file", async () => {
    write("bad/broken.service.cjs", "throw new Error('boom at load');");
    await expect(loadUserServices(loadConfig({ CLAWFLEET_USER_SERVICES: "bad/broken.service.cjs" }, dir), dir)).rejects.toThrow(
      "CLAWFLEET_USER_SERVICES: service file bad/broken.service.cjs failed to load: boom at load",
    );
    write("bad/empty.service.cjs", "module.exports = { actions: {} };");
    await expect(loadUserServices(loadConfig({ CLAWFLEET_USER_SERVICES: "bad/empty.service.cjs" }, dir), dir)).rejects.toThrow(
      /service file bad\/empty\.service\.cjs exports no Moleculer service/,
    );
    await expect(loadUserServices(loadConfig({ CLAWFLEET_USER_SERVICES: "bad/gone.service.js" }, dir), dir)).rejects.toThrow(
      /service file bad\/gone\.service\.js does not exist/,
    );
  });
});

describe("agents and tools in code", () => {
  const spec = {
    name: "coded",
    description: "An agent from code.",
    tools: ["utc_now"],
    tiers: { default: { model: "claude-haiku-4-5", max_tokens: 256 } },
    default_tier: "default",
    prompt: "Say the time.",
  };

  it("defineAgent validates as an agent file does, and its prompt_version is a content hash of it", () => {
    const a = defineAgent(spec);
    expect(a).toMatchObject({ name: "coded", tools: ["utc_now"], defaultTier: "default", systemPrompt: "Say the time." });
    expect(a.promptVersion).toMatch(/^[0-9a-f]{12}$/);
    // Key order does not matter; content does.
    const reordered = defineAgent({ prompt: spec.prompt, default_tier: "default", tiers: spec.tiers, tools: spec.tools, description: spec.description, name: "coded" });
    expect(reordered.promptVersion).toBe(a.promptVersion);
    expect(defineAgent({ ...spec, prompt: "Say the date." }).promptVersion).not.toBe(a.promptVersion);
    expect(() => defineAgent({ ...spec, default_tier: "fast" })).toThrow('defineAgent("coded"): default_tier "fast" is not among the tiers');
    expect(() => defineAgent({ ...spec, extra: 1 } as typeof spec)).toThrow(/defineAgent\("coded"\)/);
  });

  it("defineTool checks its definition where it is written and types run from the schema", async () => {
    const tool = defineTool({ name: "add", description: "Adds.", input: z.object({ a: z.number(), b: z.number() }), run: ({ a, b }) => a + b });
    expect(tool.sideEffect).toBe(false);
    const ctx = { taskId: "t", step: 1, agent: "x", idempotencyKey: "t:1", signal: new AbortController().signal };
    await expect(tool.run({ a: 2, b: 3 }, ctx)).resolves.toBe(5);
    expect(() => defineTool({ name: "no spaces", description: "d", input: z.object({}), run: () => 1 })).toThrow('defineTool("no spaces"): name');
    expect(() => defineTool({ name: "x", description: " ", input: z.object({}), run: () => 1 })).toThrow(/description/);
    expect(() => defineTool({ name: "x", description: "d", input: {} as z.ZodType, run: () => 1 })).toThrow(/input must be a zod schema/);
  });
});

describe("startNode's options", () => {
  it("override the environment, errors naming the option", () => {
    const config = configFromOptions({ env: {}, cwd: dir, port: 0, promptsDir: ["a/prompts", "b/prompts"], userServices: false, dataDir: "memory://" });
    expect(config.port).toBe(0);
    expect(config.promptsDirs).toEqual([path.join(dir, "a/prompts"), path.join(dir, "b/prompts")]);
    expect(config.userServices.files).toEqual([]);
    expect(config.dataDir).toBe("memory://");
    expect(() => configFromOptions({ env: {}, roles: ["planner"] })).toThrow('startNode option "roles" (SERVICES): picking roles needs a distributed deployment');
    expect(() => configFromOptions({ env: {}, transporter: "nats://127.0.0.1:4222" })).toThrow(/REDIS_URL and DATABASE_URL must be set too/);
    expect(() => configFromOptions({ env: {}, port: -1 })).toThrow(/startNode option "port" \(PORT\)/);
    expect(() => configFromOptions({ env: {}, prot: 1 } as never)).toThrow(/unknown option "prot"/);
    expect(() => configFromOptions({ env: {}, agents: [{ name: "raw" }] } as never)).toThrow(/agents\[0\] is not what defineAgent\(…\) returns/);
  });
});
