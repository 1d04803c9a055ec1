/**
 * rollouts - what an intake shows is what it routes by: a rollback decided on
 * another node, read through this intake's agent view before its event arrived,
 * sends this intake's next tasks to the stable version at once.
 */
import { describe, expect, it } from "vitest";
import { AgentCatalog, parseAgentFile } from "../../src/agent/definition";
import { Rollouts } from "../../src/rollout/control";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { useMemoryStore } from "../helpers/memoryStore";

let store: PgTaskStore;
useMemoryStore((s) => (store = s));

const file = (prompt: string) => ["---", "name: echo", "tiers:", "  main: {model: claude-haiku-5-5, max_tokens: 64}", "default_tier: main", "---", prompt].join("\n");
const AGENT = parseAgentFile(file("Say it back."), "echo.md");
const quiet = { info: () => undefined, warn: () => undefined };
const ids = Array.from({ length: 200 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`);

describe("rollouts - the view and the routing", () => {
  for (const read of ["view", "list"] as const) {
    it(`a rollback read through ${read}() routes this intake's next tasks to stable, its event not yet heard`, async () => {
      // No refresh timer and no events: the cache changes only by what this intake does.
      const rollouts = new Rollouts({ store, agents: new AgentCatalog([AGENT]), logger: quiet, refreshMs: 3_600_000 });
      const started = await rollouts.startCanary("echo", { prompt: file("Say it back, twice."), steps: [50, 100] }, "test");
      const canary = started.canary?.version;
      expect(canary).toBeDefined();
      const routed = async () => new Set(await Promise.all(ids.map(async (id) => (await rollouts.route(AGENT, id)).version)));
      expect(await routed()).toEqual(new Set([AGENT.promptVersion, canary]));

      // Another node's judge rolls it back; its event has not reached this intake.
      const row = await store.getRollout("echo");
      expect((await store.decideCanary("echo", row?.revision ?? -1, { canary_state: "rolled_back", canary_weight: 0 })).applied).toBe(true);

      const shown = read === "view" ? await rollouts.view("echo") : (await rollouts.list()).find((a) => a.name === "echo");
      expect(shown?.canary?.state).toBe("rolled_back");
      expect(await routed()).toEqual(new Set([AGENT.promptVersion]));
      rollouts.stop();
    });
  }
});
