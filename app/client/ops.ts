/** `clawfleet agents|queues|limits|switches|approvals|keys`: the operator's controls and reads, each one REST call. */
import type { ApiKeyInfo, CreatedKey } from "../../src/contracts";
import { line, positiveInt, stringOpt, UsageError, type Command, type Invocation } from "./command";
import { fields, render, table } from "./format";
import { pathOf, type ApiAnswer } from "./http";

/** Prints an answer whose shape the client shows generically (`render` in format.ts). */
function show(c: Invocation, r: ApiAnswer): number {
  c.io.out(line(c.json ? r.text : render(r.body)));
  return 0;
}

/** `--steps 5,25,50,100`: canary weights in percent, rising, ending at 100. */
export function canarySteps(text: string): number[] {
  const steps = text.split(",").map((s) => Number(s.trim()));
  if (steps.length === 0 || steps.some((n) => !Number.isInteger(n) || n <= 0 || n > 100)) {
    throw new UsageError(`--steps must be percentages from 1 to 100, comma-separated (5,25,50,100), got "${text}"`);
  }
  return steps;
}

export function keysText(keys: readonly ApiKeyInfo[]): string {
  if (keys.length === 0) return "no keys";
  return table(
    ["ID", "TENANT", "SCOPES", "CREATED", "EXPIRES", "REVOKED"],
    keys.map((k) => [k.id, k.tenant, k.scopes.join(","), k.created_at, k.expires_at ?? "-", k.revoked_at ?? "-"]),
  );
}

/** A command that takes no arguments and shows what one GET answers. */
const readCommand = (name: string, summary: string, path: string): Command => ({
  name,
  summary,
  arity: [0, 0],
  run: async (c) => show(c, await c.api.get(path)),
});

export const OPS_COMMANDS: readonly Command[] = [
  {
    name: "agents",
    args: "[name]",
    summary: "the agents: versions, canary weights, the judge's state (one agent with [name])",
    arity: [0, 1],
    async run(c) {
      const [name] = c.args;
      return show(c, await c.api.get(name === undefined ? "/v1/agents" : pathOf("/v1/agents", name)));
    },
  },
  {
    name: "agents canary",
    args: "<name> <agent-file>",
    summary: "start a canary of a new version of an agent, from its agent file",
    details: "Promotion and rollback are automatic; `clawfleet agents <name>` shows how it goes.",
    arity: [2, 2],
    options: {
      steps: { type: "string", value: "5,25,50,100", help: "the canary's traffic share at each step, in percent" },
      "min-tasks": { type: "string", value: "n", help: "tasks each step must see before the next" },
    },
    async run(c) {
      const [name = "", file = ""] = c.args;
      let prompt: string;
      try {
        prompt = await c.io.readFile(file);
      } catch (err) {
        throw new UsageError(`cannot read the agent file ${file}: ${(err as Error).message}`);
      }
      const steps = stringOpt(c.opt, "steps");
      const minTasks = positiveInt("--min-tasks", stringOpt(c.opt, "min-tasks"));
      const body = { prompt, ...(steps !== undefined ? { steps: canarySteps(steps) } : {}), ...(minTasks !== undefined ? { min_tasks_per_step: minTasks } : {}) };
      return show(c, await c.api.post(pathOf("/v1/agents", name, "canary"), body));
    },
  },
  {
    name: "agents canary-abort",
    args: "<name>",
    summary: "abort an agent's canary: all its traffic goes back to the stable version",
    arity: [1, 1],
    async run(c) {
      return show(c, await c.api.delete(pathOf("/v1/agents", c.args[0] ?? "", "canary")));
    },
  },
  readCommand("queues", "the wake-up queue's backlog and lag, the open tasks and the dead letters (a key of tenant default)", "/v1/queues"),
  readCommand("limits", "each model's rate limits, what the cluster used of them and the headroom left (a key of tenant default)", "/v1/limits"),
  readCommand("switches", "the kill switches and what each one holds paused", "/v1/switches"),
  {
    name: "switches set",
    args: "<kind> <name>",
    summary: "pause (--paused) or resume (--resume) an agent, tool, model or prompt",
    details: "Paused work waits, it is not failed, and resumes when the switch is lifted. <kind> is agent, tool, model or prompt.",
    arity: [2, 2],
    options: {
      paused: { type: "boolean", help: "pause it" },
      resume: { type: "boolean", help: "lift the switch" },
      abort: { type: "boolean", help: "with --paused: abort the work in flight rather than let it finish its current call" },
    },
    async run(c) {
      const [kind = "", name = ""] = c.args;
      const paused = c.opt.paused === true;
      if (paused === (c.opt.resume === true)) throw new UsageError("say either --paused or --resume");
      if (c.opt.abort === true && !paused) throw new UsageError("--abort goes with --paused");
      const body = paused ? { paused, in_flight: c.opt.abort === true ? "abort" : "drain" } : { paused };
      return show(c, await c.api.put(pathOf("/v1/switches", kind, name), body));
    },
  },
  {
    name: "approvals",
    summary: "tasks waiting for an approval, with the tool call each one waits on",
    arity: [0, 0],
    options: { status: { type: "string", value: "s", help: "which decisions to list (default pending)" } },
    async run(c) {
      return show(c, await c.api.get("/v1/approvals", { query: { status: stringOpt(c.opt, "status") ?? "pending" } }));
    },
  },
  {
    name: "keys ls",
    summary: "the API keys (never a secret)",
    arity: [0, 0],
    async run(c) {
      const r = await c.api.get<ApiKeyInfo[]>("/v1/keys");
      c.io.out(line(c.json ? r.text : keysText(r.body)));
      return 0;
    },
  },
  {
    name: "keys create",
    summary: "create an API key; the key is printed this once",
    arity: [0, 0],
    options: {
      tenant: { type: "string", value: "t", help: "the tenant the key acts for (required)" },
      scopes: { type: "string", value: "a,b", help: "submit, read, operate, admin (required)" },
      "expires-in": { type: "string", value: "seconds", help: "the key stops working after this long" },
      replaces: { type: "string", value: "id", help: "rotation: the key this one replaces, which keeps working --overlap seconds more" },
      overlap: { type: "string", value: "seconds", help: "with --replaces (default 86400)" },
    },
    async run(c) {
      const tenant = stringOpt(c.opt, "tenant");
      const scopes = stringOpt(c.opt, "scopes");
      if (tenant === undefined || scopes === undefined) throw new UsageError("--tenant and --scopes are required");
      const expires = positiveInt("--expires-in", stringOpt(c.opt, "expires-in"));
      const replaces = stringOpt(c.opt, "replaces");
      const overlapText = stringOpt(c.opt, "overlap");
      const overlap = overlapText === undefined ? undefined : Number(overlapText);
      if (overlap !== undefined && !(Number.isInteger(overlap) && overlap >= 0)) throw new UsageError(`--overlap must be a whole number of seconds, got "${overlapText}"`);
      const body = {
        tenant,
        scopes: scopes.split(",").map((s) => s.trim()).filter((s) => s !== ""),
        ...(expires !== undefined ? { expires_in_seconds: expires } : {}),
        ...(replaces !== undefined ? { replaces } : {}),
        ...(overlap !== undefined ? { overlap_seconds: overlap } : {}),
      };
      const r = await c.api.post<CreatedKey>("/v1/keys", body);
      if (c.json) {
        c.io.out(line(r.text));
        return 0;
      }
      const k = r.body;
      c.io.out(line(fields([["id", k.id], ["tenant", k.tenant], ["scopes", k.scopes.join(",")], ["expires", k.expires_at ?? "never"], ["key", k.key]])));
      c.io.err(line("The key is shown this once: keep it now (only its hash is stored)."));
      return 0;
    },
  },
  {
    name: "keys revoke",
    args: "<id>",
    summary: "revoke an API key at once",
    arity: [1, 1],
    async run(c) {
      const r = await c.api.delete<ApiKeyInfo>(pathOf("/v1/keys", c.args[0] ?? ""));
      c.io.out(line(c.json ? r.text : `${r.body.id} revoked ${r.body.revoked_at ?? ""}`.trimEnd()));
      return 0;
    },
  },
];
