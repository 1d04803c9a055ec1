/**
 * cli client - the `clawfleet` commands that call the REST API, without a
 * network: a recording fetch answers canned responses, so each test sees the
 * request a command line makes (method, path, headers, body), what it prints,
 * and the exit code it ends with.
 */
import { describe, expect, it } from "vitest";
import { EXIT, UsageError, type ClientIo } from "../../app/client/command";
import { compact, render, table } from "../../app/client/format";
import { ApiClient, type Fetch } from "../../app/client/http";
import { findCommand, parseCommandLine, runClient } from "../../app/client/index";
import { canarySteps } from "../../app/client/ops";
import { readInput, submitBody, taskText } from "../../app/client/tasks";
import { SseParser } from "../../app/client/sse";
import { follow, outcomeText, progressLine, stepLine } from "../../app/client/watch";

const ID = "0b7c6f7e-6a0e-4d8e-9d55-0a3f2b1c9e01";

interface Sent {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

type Answer = { status?: number; body?: unknown; text?: string } | Error;

/** A fetch that records each request and answers from `answer` (by request, in order). */
function fakeFetch(answer: (req: Sent, n: number) => Answer): { fetch: Fetch; sent: Sent[] } {
  const sent: Sent[] = [];
  const fetch: Fetch = async (url, init) => {
    const req: Sent = {
      method: init.method ?? "GET",
      url,
      headers: { ...(init.headers as Record<string, string>) },
      body: typeof init.body === "string" ? JSON.parse(init.body) : undefined,
    };
    sent.push(req);
    const a = answer(req, sent.length - 1);
    if (a instanceof Error) throw a;
    const text = a.text ?? (a.body === undefined ? "" : JSON.stringify(a.body));
    return new Response(text, { status: a.status ?? 200, statusText: a.status === 502 ? "Bad Gateway" : "", headers: { "Content-Type": "application/json" } });
  };
  return { fetch, sent };
}

function fakeIo(over: Partial<ClientIo> = {}): ClientIo & { stdout: () => string; stderr: () => string; slept: number[] } {
  let out = "";
  let err = "";
  let clock = 0;
  const slept: number[] = [];
  return {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    isTTY: false,
    readStdin: async () => "from stdin\n",
    readFile: async (p) => {
      if (p === "input.json") return '{"order_id": "ORD-7"}\n';
      if (p === "agent.md") return "---\nname: echo\n---\nBe brief.\n";
      throw new Error(`ENOENT: no such file, open '${p}'`);
    },
    sleep: async (ms) => void slept.push(ms),
    now: () => (clock += 100),
    stdout: () => out,
    stderr: () => err,
    slept,
    ...over,
  };
}

const config = { url: "http://cluster.test:3000/", apiKey: "cfk_env_key" };

async function run(argv: string[], answer: (req: Sent, n: number) => Answer = () => ({ body: {} }), io = fakeIo()) {
  const f = fakeFetch(answer);
  const code = await runClient(argv, { config, io, fetch: f.fetch });
  return { code, sent: f.sent, out: io.stdout(), err: io.stderr() };
}

const task = (over: Record<string, unknown> = {}) => ({
  id: ID,
  agent: "echo",
  status: "running",
  priority: "normal",
  input: "hi",
  metadata: {},
  result: null,
  error: null,
  attempts: 1,
  steps: 0,
  usage: { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0, cost_usd: 0 },
  prompt_version: "pv-1",
  tenant: "default",
  created_at: "2025-01-01T00:00:00.000Z",
  started_at: "2025-01-01T00:00:01.000Z",
  finished_at: null,
  ...over,
});

const llm = (step: number) => ({
  step,
  kind: "llm",
  model: "claude-haiku-5-5",
  tier: "main",
  stop_reason: "tool_use",
  usage: { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, cost_usd: 0.0001 },
  content: [{ type: "text", text: "looking it up" }, { type: "tool_use", id: "tu_1", name: "lookup_order", input: {} }],
  duration_ms: 412,
  created_at: "2025-01-01T00:00:02.000Z",
});
const tool = (step: number) => ({
  step,
  kind: "tool",
  tool: "lookup_order",
  tool_use_id: "tu_1",
  input: { order_id: "ORD-7" },
  output: { sku: "A-1" },
  ok: true,
  duration_ms: 3,
  created_at: "2025-01-01T00:00:03.000Z",
});

const CREATED_KEY = { id: "0123456789abcdef", tenant: "acme", scopes: ["read"], created_at: "2025-01-01T00:00:00.000Z", expires_at: null, revoked_at: null, key: "cfk_0123456789abcdef_s3cret" };

describe("cli client - finding the command and parsing its arguments", () => {
  it.each([
    [["tasks", "submit", "echo", "x"], "tasks submit", ["echo", "x"]],
    [["agents"], "agents", []],
    [["agents", "order-router"], "agents", ["order-router"]],
    [["agents", "canary", "echo", "a.md"], "agents canary", ["echo", "a.md"]],
    [["switches", "set", "tool", "x", "--paused"], "switches set", ["tool", "x", "--paused"]],
    [["watch", ID], "watch", [ID]],
  ])("%j is %s", (argv, name, rest) => {
    const found = findCommand(argv);
    expect(found?.cmd.name).toBe(name);
    expect(found?.rest).toEqual(rest);
  });

  it("finds no command for an unknown subcommand of a group", () => {
    expect(findCommand(["tasks", "frobnicate"])).toBeUndefined();
    expect(findCommand(["keys"])).toBeUndefined();
  });

  it("parses options in any position, --name=value included, and keeps '-' as an argument", () => {
    const cmd = findCommand(["tasks", "submit"])?.cmd;
    if (!cmd) throw new Error("no command");
    const p = parseCommandLine(cmd, ["--priority=high", "echo", "-", "--wait", "--idempotency-key", "k-1", "--json"]);
    expect(p.args).toEqual(["echo", "-"]);
    expect(p.opt).toMatchObject({ priority: "high", wait: true, "idempotency-key": "k-1", json: true });
  });

  it.each([
    ["an unknown option", ["echo", "x", "--colour", "red"], /Unknown option '--colour'/],
    ["an option without its value", ["echo", "x", "--priority"], /--priority <value>' argument missing/],
    ["a missing argument", ["echo"], /takes 2 arguments \(<agent> <input-json\|@file\|->\), got 1/],
    ["an argument too many", ["echo", "x", "y"], /got 3/],
  ])("refuses %s with a usage error", (_what, rest, message) => {
    const cmd = findCommand(["tasks", "submit"])?.cmd;
    if (!cmd) throw new Error("no command");
    expect(() => parseCommandLine(cmd, rest)).toThrow(UsageError);
    expect(() => parseCommandLine(cmd, rest)).toThrow(message);
  });

  it("reads the input inline, from a file or from stdin: JSON when it parses, else a string", async () => {
    const io = fakeIo();
    expect(await readInput('{"order_id": "ORD-1"}', io)).toEqual({ order_id: "ORD-1" });
    expect(await readInput("route ORD-1 please", io)).toBe("route ORD-1 please");
    expect(await readInput('"quoted"', io)).toBe("quoted");
    expect(await readInput("@input.json", io)).toEqual({ order_id: "ORD-7" });
    expect(await readInput("-", io)).toBe("from stdin");
    await expect(readInput("@missing.json", io)).rejects.toThrow(/cannot read the input file missing.json/);
  });

  it("builds the submit body from the options, and refuses metadata that is not JSON", () => {
    expect(submitBody("echo", "hi", { priority: "high", metadata: '{"team": "ops"}', budgets: '{"max_cost_usd": 0.5}' })).toEqual({
      agent: "echo",
      input: "hi",
      priority: "high",
      metadata: { team: "ops" },
      budgets: { max_cost_usd: 0.5 },
    });
    expect(submitBody("echo", { a: 1 }, {})).toEqual({ agent: "echo", input: { a: 1 } });
    expect(() => submitBody("echo", "hi", { metadata: "{team: ops}" })).toThrow(/--metadata is not valid JSON/);
  });

  it("takes canary steps as percentages", () => {
    expect(canarySteps("5, 25,50,100")).toEqual([5, 25, 50, 100]);
    for (const bad of ["5,,100", "0,100", "5,150", "a,b"]) expect(() => canarySteps(bad)).toThrow(UsageError);
  });
});

describe("cli client - requests and output", () => {
  it("submits with the key from the environment, the Idempotency-Key header, and prints the id", async () => {
    const r = await run(["tasks", "submit", "echo", '{"q": 1}', "--idempotency-key", "order-1", "--priority", "low"], () => ({ status: 202, body: { id: ID, status: "queued" } }));
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toBe(`${ID}\n`);
    expect(r.sent).toHaveLength(1);
    expect(r.sent[0]).toMatchObject({
      method: "POST",
      url: "http://cluster.test:3000/v1/tasks",
      headers: { Authorization: "Bearer cfk_env_key", "Idempotency-Key": "order-1", "Content-Type": "application/json" },
      body: { agent: "echo", input: { q: 1 }, priority: "low" },
    });
  });

  it("lets --url and --key override the environment", async () => {
    const r = await run(["tasks", "get", ID, "--url", "https://other.test/base", "--key", "cfk_flag"], () => ({ body: task() }));
    expect(r.sent[0]?.url).toBe(`https://other.test/base/v1/tasks/${ID}`);
    expect(r.sent[0]?.headers.Authorization).toBe("Bearer cfk_flag");
  });

  it("sends no Authorization header when there is no key", async () => {
    const io = fakeIo();
    const f = fakeFetch(() => ({ body: task() }));
    await runClient(["tasks", "get", ID], { config: { url: "http://x.test", apiKey: undefined }, io, fetch: f.fetch });
    expect(f.sent[0]?.headers).not.toHaveProperty("Authorization");
  });

  it("--json prints the API's answer byte for byte", async () => {
    const text = '{"id":"' + ID + '","status":"queued"}';
    const r = await run(["tasks", "submit", "echo", "hi", "--json"], () => ({ status: 202, text }));
    expect(r.out).toBe(`${text}\n`);
  });

  it("escapes an id into one path segment, so it cannot reach another route", async () => {
    const r = await run(["tasks", "get", "../keys"], () => ({ status: 404, body: { error: { type: "task_not_found", message: "no task" } } }));
    expect(r.sent[0]?.url).toBe("http://cluster.test:3000/v1/tasks/..%2Fkeys");
  });

  it("lists a page as a table and prints the command for the next page on stderr", async () => {
    const page = { tasks: [{ ...task({ status: "succeeded", steps: 2, usage: { input_tokens: 30, output_tokens: 7, cache_read_input_tokens: 0, cost_usd: 0.0021 } }) }], next_cursor: "Y3Vyc29y" };
    const r = await run(["tasks", "ls", "--status", "succeeded", "--limit", "1"], () => ({ body: page }));
    expect(r.sent[0]?.url).toBe("http://cluster.test:3000/v1/tasks?status=succeeded&limit=1");
    expect(r.out.split("\n")[0]).toMatch(/^ID\s+AGENT\s+STATUS\s+STEPS\s+TOKENS\s+COST\s+CREATED$/);
    expect(r.out).toContain(`${ID}  echo   succeeded  2      30/7    $0.0021`);
    expect(r.err).toBe("more: clawfleet tasks ls --status succeeded --limit 1 --cursor Y3Vyc29y\n");
  });

  it("prints no next-page hint on the last page", async () => {
    const r = await run(["tasks", "ls"], () => ({ body: { tasks: [], next_cursor: null } }));
    expect(r.sent[0]?.url).toBe("http://cluster.test:3000/v1/tasks");
    expect(r.out).toBe("no tasks\n");
    expect(r.err).toBe("");
  });

  it.each([
    [["tasks", "cancel", ID, "--reason", "wrong order"], "POST", `/v1/tasks/${ID}/cancel`, { reason: "wrong order" }],
    [["tasks", "cancel", ID], "POST", `/v1/tasks/${ID}/cancel`, undefined],
    [["tasks", "approve", ID], "POST", `/v1/tasks/${ID}/approval`, { decision: "approve" }],
    [["tasks", "approve", ID, "--reject", "--reason", "too big"], "POST", `/v1/tasks/${ID}/approval`, { decision: "reject", reason: "too big" }],
    [["tasks", "redrive", ID], "POST", `/v1/tasks/${ID}/redrive`, undefined],
    [["agents"], "GET", "/v1/agents", undefined],
    [["agents", "order-router"], "GET", "/v1/agents/order-router", undefined],
    [["agents", "canary", "echo", "agent.md", "--steps", "10,100", "--min-tasks", "20"], "POST", "/v1/agents/echo/canary", { prompt: "---\nname: echo\n---\nBe brief.\n", steps: [10, 100], min_tasks_per_step: 20 }],
    [["agents", "canary-abort", "echo"], "DELETE", "/v1/agents/echo/canary", undefined],
    [["switches"], "GET", "/v1/switches", undefined],
    [["switches", "set", "tool", "route_order", "--paused"], "PUT", "/v1/switches/tool/route_order", { paused: true, in_flight: "drain" }],
    [["switches", "set", "model", "claude-x", "--paused", "--abort"], "PUT", "/v1/switches/model/claude-x", { paused: true, in_flight: "abort" }],
    [["switches", "set", "agent", "echo", "--resume"], "PUT", "/v1/switches/agent/echo", { paused: false }],
    [["approvals"], "GET", "/v1/approvals?status=pending", undefined],
    [["keys", "ls"], "GET", "/v1/keys", undefined],
    [["keys", "create", "--tenant", "acme", "--scopes", "submit, read", "--expires-in", "3600"], "POST", "/v1/keys", { tenant: "acme", scopes: ["submit", "read"], expires_in_seconds: 3600 }],
    [["keys", "revoke", "0123456789abcdef"], "DELETE", "/v1/keys/0123456789abcdef", undefined],
  ])("%j calls %s %s", async (argv, method, path, body) => {
    const r = await run(argv, (req) => ({ body: req.url.endsWith("/v1/keys") ? (req.method === "GET" ? [] : CREATED_KEY) : {} }));
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(r.sent).toHaveLength(1);
    expect(r.sent[0]?.method).toBe(method);
    expect(r.sent[0]?.url).toBe(`http://cluster.test:3000${path}`);
    expect(r.sent[0]?.body).toEqual(body);
  });

  it("shows a created key once, with a warning on stderr to keep it", async () => {
    const r = await run(["keys", "create", "--tenant", "acme", "--scopes", "read"], () => ({ status: 201, body: CREATED_KEY }));
    expect(r.out).toMatch(/^key\s+cfk_0123456789abcdef_s3cret$/m);
    expect(r.err).toMatch(/shown this once/);
  });
});

describe("cli client - failures and exit codes", () => {
  it("prints the API's error as `error: <type>: <message>` on stderr and exits 1", async () => {
    const r = await run(["tasks", "get", ID], () => ({ status: 404, body: { error: { type: "task_not_found", message: `no task ${ID}` } } }));
    expect(r.code).toBe(EXIT.apiError);
    expect(r.out).toBe("");
    expect(r.err).toBe(`error: task_not_found: no task ${ID}\n`);
  });

  it("reports an error that is not the API's body by its status, and exits 1", async () => {
    const r = await run(["tasks", "get", ID], () => ({ status: 502, text: "<html><body>bad gateway</body></html>" }));
    expect(r.code).toBe(EXIT.apiError);
    expect(r.err).toBe("error: http_502: Bad Gateway: <html><body>bad gateway</body></html>\n");
  });

  it("exits 3 when nothing answers, naming the address and why", async () => {
    const refused = Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:3000"), { code: "ECONNREFUSED" }) });
    const r = await run(["tasks", "ls"], () => refused);
    expect(r.code).toBe(EXIT.cannotConnect);
    expect(r.err).toBe("error: cannot connect to http://cluster.test:3000: connect ECONNREFUSED 127.0.0.1:3000\n");
  });

  it("exits 3 when the answer does not come in time", async () => {
    const api = new ApiClient({ url: "http://slow.test", timeoutMs: 20, fetch: (_u, init) => new Promise((_r, reject) => init.signal?.addEventListener("abort", () => reject(init.signal?.reason as Error))) });
    await expect(api.get("/v1/tasks")).rejects.toThrow("cannot connect to http://slow.test: no answer within 20 ms");
  });

  it.each([
    ["a missing argument", ["tasks", "get"]],
    ["an unknown option", ["tasks", "ls", "--colour"]],
    ["a limit that is not a positive integer", ["tasks", "ls", "--limit", "ten"]],
    ["--paused with --resume", ["switches", "set", "tool", "x", "--paused", "--resume"]],
    ["neither --paused nor --resume", ["switches", "set", "tool", "x"]],
    ["--abort without --paused", ["switches", "set", "tool", "x", "--resume", "--abort"]],
    ["keys create without --tenant", ["keys", "create", "--scopes", "read"]],
    ["an agent file that cannot be read", ["agents", "canary", "echo", "missing.md"]],
    ["a --url that is not http", ["tasks", "ls", "--url", "localhost:3000"]],
  ])("exits 2 on %s, having called nothing", async (_what, argv) => {
    const r = await run(argv);
    expect(r.code).toBe(EXIT.usage);
    expect(r.sent).toEqual([]);
    expect(r.err).toMatch(/usage: clawfleet /);
  });

  it("answers --help on stdout with exit 0, for a command and for a group", async () => {
    const cmd = await run(["tasks", "submit", "--help"]);
    expect(cmd.code).toBe(EXIT.ok);
    expect(cmd.out).toMatch(/^usage: clawfleet tasks submit <agent> <input-json\|@file\|-> \[options\]/);
    expect(cmd.out).toContain("--idempotency-key <k>");
    expect(cmd.out).toContain("--json");
    const group = await run(["keys", "--help"]);
    expect(group.code).toBe(EXIT.ok);
    expect(group.out).toContain("clawfleet keys create");
    expect(group.out).toContain("clawfleet keys revoke <id>");
    // A group that is a command too: its help names the group's other commands.
    expect((await run(["agents", "--help"])).out).toContain("clawfleet agents canary <name> <agent-file>");
    expect(cmd.sent).toEqual([]);
  });

  it("exits 2 with the group's help on stderr for a group without a command, or an unknown one", async () => {
    const bare = await run(["keys"]);
    expect(bare.code).toBe(EXIT.usage);
    expect(bare.err).toContain("clawfleet keys ls");
    const unknown = await run(["tasks", "frobnicate"]);
    expect(unknown.code).toBe(EXIT.usage);
    expect(unknown.err).toMatch(/^clawfleet: unknown command "tasks frobnicate"/);
  });
});

/** A task's event stream as the API writes it (src/api/taskStream.ts). */
function sse(events: Array<{ id?: number; event: string; data: Record<string, unknown> } | string>): string {
  return events.map((e) => (typeof e === "string" ? e : `${e.id !== undefined ? `id: ${e.id}\n` : ""}event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`)).join("");
}
const stepEvent = (s: { step: number }) => ({ id: 4 * s.step, event: "step", data: { task_id: ID, ...s } });
const endEvent = (status: string, steps: number) => ({ id: 4 * steps + 3, event: status, data: { task_id: ID, status, steps } });
const NO_ROUTE: Answer = { status: 404, body: { error: { type: "not_found", message: "no such route" } } };

describe("cli client - watch, on the task's event stream", () => {
  const succeeded = { status: "succeeded", steps: 2, result: { warehouse: "WH-3" }, finished_at: "2025-01-01T00:00:05.000Z", usage: { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 0, cost_usd: 0.0001 } };

  it("writes JSON lines off a terminal: the task, each step as the stream sent it, the ended task last", async () => {
    const stream = sse([stepEvent(llm(1)), ": keep-alive\n\n", stepEvent(tool(2)), endEvent("succeeded", 2)]);
    let reads = 0;
    const r = await run(["watch", ID], (req) => {
      if (req.url.endsWith("/events")) return { text: stream };
      return { body: task(reads++ === 0 ? { status: "running" } : succeeded) };
    });
    expect(r.code, r.err).toBe(0);
    const out = r.out.trimEnd().split("\n");
    expect(out).toEqual([
      JSON.stringify(task({ status: "running" })),
      JSON.stringify({ task_id: ID, ...llm(1) }),
      JSON.stringify({ task_id: ID, ...tool(2) }),
      JSON.stringify(task(succeeded)),
    ]);
  });

  it("resumes a dropped stream with Last-Event-ID, and shows no step twice when the server replays", async () => {
    const io = fakeIo();
    const streams = [sse([stepEvent(llm(1))]), sse([{ event: "reset", data: { task_id: ID } }, stepEvent(llm(1)), stepEvent(tool(2)), endEvent("succeeded", 2)])];
    const f = fakeFetch((req) => (req.url.endsWith("/events") ? { text: streams.shift() ?? "" } : { body: task(streams.length === 0 ? succeeded : { status: "running" }) }));
    const code = await runClient(["watch", ID], { config, io, fetch: f.fetch });
    expect(code, io.stderr()).toBe(0);
    const opened = f.sent.filter((s) => s.url.endsWith("/events"));
    expect(opened.map((s) => s.headers["Last-Event-ID"])).toEqual([undefined, "4"]);
    expect(opened[0]?.headers).toMatchObject({ Accept: "text/event-stream", Authorization: "Bearer cfk_env_key" });
    const steps = io.stdout().trimEnd().split("\n").map((l) => JSON.parse(l) as { step?: number }).filter((l) => l.step !== undefined);
    expect(steps.map((s) => s.step)).toEqual([1, 2]);
    expect(io.slept).toEqual([1000]);
  });

  it("shows the task again when it stops for an approval, and when it runs on", async () => {
    const stream = sse([stepEvent(llm(1)), { id: 5, event: "awaiting_approval", data: { task_id: ID, status: "awaiting_approval", step: 1 } }, stepEvent(tool(2)), endEvent("succeeded", 2)]);
    const states = [{ status: "queued" }, { status: "running", steps: 1 }, { status: "awaiting_approval", steps: 1 }, { status: "running", steps: 2 }, succeeded];
    const r = await run(["watch", ID], (req) => (req.url.endsWith("/events") ? { text: stream } : { body: task(states.shift()) }));
    expect(r.code, r.err).toBe(0);
    const out = r.out.trimEnd().split("\n").map((l) => JSON.parse(l) as { status?: string; step?: number });
    expect(out.map((l) => (l.step !== undefined ? `step ${l.step}` : `task ${l.status}`))).toEqual([
      "task queued",
      "task running",
      "step 1",
      "task awaiting_approval",
      "task running",
      "step 2",
      "task succeeded",
    ]);
  });

  it("draws a one-line progress display on a terminal, each new step above it, the outcome at the end", async () => {
    const io = fakeIo({ isTTY: true });
    const stream = sse([stepEvent(llm(1)), stepEvent(tool(2)), endEvent("succeeded", 2)]);
    let reads = 0;
    const f = fakeFetch((req) => (req.url.endsWith("/events") ? { text: stream } : { body: task(reads++ === 0 ? { status: "running" } : succeeded) }));
    expect(await runClient(["watch", ID], { config, io, fetch: f.fetch })).toBe(0);
    const CLEAR = "\r\x1b[2K";
    expect(io.stdout()).toBe(
      `${CLEAR}step 0 · running · 0/0 tok · $0.000000` +
        `${CLEAR}${stepLine(llm(1) as never)}\n${CLEAR}step 1 · running · 10/5 tok · $0.000100` +
        `${CLEAR}${stepLine(tool(2) as never)}\n${CLEAR}step 2 · running · 10/5 tok · $0.000100` +
        `${CLEAR}succeeded · 2 steps · 10/5 tok · $0.000100 · 4.0s\n{\n  "warehouse": "WH-3"\n}\n`,
    );
  });

  it.each([
    ["failed", 1],
    ["cancelled", 2],
    ["succeeded", 0],
  ])("exits with the task's outcome: %s is %i", async (status, code) => {
    let reads = 0;
    const r = await run(["watch", ID], (req) =>
      req.url.endsWith("/events") ? { text: sse([endEvent(status, 0)]) } : { body: task(reads++ === 0 ? { status: "running" } : { status, finished_at: "2025-01-01T00:00:02.000Z" }) },
    );
    expect(r.code).toBe(code);
  });

  it("gives up with exit 3 when the stream keeps ending before the task does", async () => {
    const io = fakeIo();
    const f = fakeFetch((req) => (req.url.endsWith("/events") ? { text: ": keep-alive\n\n" } : { body: task() }));
    const code = await runClient(["watch", ID], { config, io, fetch: f.fetch });
    expect(code).toBe(EXIT.cannotConnect);
    expect(io.stderr()).toMatch(/keeps ending before the task does/);
    expect(f.sent.filter((s) => s.url.endsWith("/events"))).toHaveLength(11);
  });

  it("answers a task that is not there with the API's 404 and exit 1", async () => {
    const r = await run(["watch", ID], () => ({ status: 404, body: { error: { type: "task_not_found", message: "no task" } } }));
    expect(r.code).toBe(EXIT.apiError);
    expect(r.err).toBe("error: task_not_found: no task\n");
  });

  it("stops at once for a task that already ended, with its steps and no stream", async () => {
    const io = fakeIo();
    const f = fakeFetch((req) => (req.url.endsWith("/steps") ? { body: { id: ID, status: "failed", steps: [llm(1)] } } : { body: task({ status: "failed", steps: 1, error: { type: "budget_exceeded", message: "over" } }) }));
    const code = await follow({ api: new ApiClient({ url: "http://x.test", fetch: f.fetch }), io, args: [ID], opt: {}, json: true }, ID);
    expect(code).toBe(1);
    expect(f.sent.map((s) => s.url)).toEqual([`http://x.test/v1/tasks/${ID}`, `http://x.test/v1/tasks/${ID}/steps`]);
    expect(io.stdout().trimEnd().split("\n")).toHaveLength(2);
  });
});

describe("cli client - watch, polling a cluster without the event stream", () => {
  /** The API of one task going through `states`, one per read of the task; steps as many as each state counts. */
  function taskApi(states: Array<Record<string, unknown>>) {
    const all = [llm(1), tool(2), llm(3)];
    let reads = 0;
    let stepReads = 0;
    const answer = (req: Sent): Answer => {
      if (req.url.endsWith("/events")) return NO_ROUTE;
      if (req.url.endsWith("/steps")) {
        stepReads++;
        const t = states[Math.min(reads, states.length) - 1] ?? {};
        return { body: { id: ID, status: t.status, steps: all.slice(0, Number(t.steps ?? 0)) } };
      }
      const t = task(states[Math.min(reads, states.length - 1)]);
      reads++;
      return { body: t };
    };
    return { answer, stepReads: () => stepReads, reads: () => reads };
  }

  const succeeded = { status: "succeeded", steps: 3, result: { warehouse: "WH-3" }, finished_at: "2025-01-01T00:00:05.000Z", usage: { input_tokens: 20, output_tokens: 10, cache_read_input_tokens: 0, cost_usd: 0.0002 } };

  it("writes the task on each status change, each new step once, the ended task last; steps read only when their count moved", async () => {
    const api = taskApi([{ status: "queued" }, { status: "running", steps: 1 }, { status: "running", steps: 1 }, { status: "running", steps: 2 }, succeeded]);
    const r = await run(["watch", ID], api.answer);
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => (l.kind !== undefined ? `step ${String(l.step)}` : `task ${String(l.status)}`))).toEqual([
      "task queued",
      "step 1",
      "task running",
      "step 2",
      "step 3",
      "task succeeded",
    ]);
    expect(api.stepReads()).toBe(3);
  });

  it("polls every 500 ms, and exits with the task's outcome", async () => {
    const io = fakeIo();
    const api = taskApi([{ status: "running" }, { status: "awaiting_approval" }, { status: "cancelled", finished_at: "2025-01-01T00:00:05.000Z" }]);
    const code = await runClient(["watch", ID], { config, io, fetch: fakeFetch(api.answer).fetch });
    expect(code).toBe(2);
    expect(io.slept).toEqual([500, 500]);
  });

  it("rides out a 503 after the first read", async () => {
    let n = 0;
    const flaky = (req: Sent): Answer => {
      if (req.url.endsWith("/events")) return NO_ROUTE;
      n++;
      if (n === 2) return { status: 503, body: { error: { type: "unavailable", message: "retry" } } };
      return req.url.endsWith("/steps") ? { body: { id: ID, status: "succeeded", steps: [] } } : { body: task(n === 1 ? { status: "running" } : { status: "succeeded" }) };
    };
    expect((await run(["watch", ID], flaky)).code).toBe(0);
  });

  it("follows the task it submitted with --wait, after printing the submit answer", async () => {
    const api = taskApi([{ status: "running" }, succeeded]);
    const r = await run(["tasks", "submit", "echo", "hi", "--wait"], (req) => (req.method === "POST" ? { status: 202, body: { id: ID, status: "queued" } } : api.answer(req)));
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split("\n");
    expect(JSON.parse(lines[0] ?? "")).toEqual({ id: ID, status: "queued" });
    expect(JSON.parse(lines.at(-1) ?? "")).toMatchObject({ status: "succeeded" });
  });
});

describe("cli client - reading an event stream", () => {
  const STREAM = 'id: 4\nevent: step\ndata: {"step":1}\n\n: keep-alive\n\nid: 7\r\nevent: succeeded\r\ndata: {"a":\r\ndata: 1}\r\n\r\n';

  it("yields the same events however the bytes are split", () => {
    const whole = new SseParser().push(STREAM);
    expect(whole).toEqual([
      { id: "4", event: "step", data: '{"step":1}' },
      { id: "7", event: "succeeded", data: '{"a":\n1}' },
    ]);
    for (let size = 1; size <= 7; size++) {
      const parser = new SseParser();
      const events = [];
      for (let i = 0; i < STREAM.length; i += size) events.push(...parser.push(STREAM.slice(i, i + size)));
      expect(events, `chunks of ${size}`).toEqual(whole);
    }
  });

  it("calls an event without a type a message, and keeps nothing of a comment", () => {
    expect(new SseParser().push(": hello\n\ndata: x\n\n")).toEqual([{ id: undefined, event: "message", data: "x" }]);
  });
});

describe("cli client - output shaping", () => {
  it("aligns tables and leaves the last column unpadded", () => {
    expect(table(["A", "BB"], [["xxx", "y"], ["z", "long value"]])).toBe("A    BB\nxxx  y\nz    long value");
  });

  it("renders answers of any shape: a list as a table, an object holding one list as its table, else name/value lines", () => {
    expect(render([{ name: "a", paused: true }, { name: "b", extra: { x: 1 } }])).toBe("NAME  PAUSED  EXTRA\na     true    -\nb     -       {\"x\":1}");
    expect(render({ agents: [{ name: "echo" }], total: 1 })).toBe("total  1\nNAME\necho");
    expect(render({ name: "echo", weights: { stable: 95, canary: 5 } })).toBe('name     echo\nweights  {"stable":95,"canary":5}');
    expect(render([])).toBe("(none)");
  });

  it("cuts compact JSON to its width", () => {
    expect(compact({ a: "x".repeat(100) }, 20)).toHaveLength(20);
    expect(compact({ a: "x".repeat(100) }, 20).endsWith("…")).toBe(true);
  });

  it("shows a task's fields by name, the ones it does not know after them, and its result whole", () => {
    const text = taskText(task({ status: "succeeded", result: { warehouse: "WH-3" }, finished_at: "2025-01-01T00:00:04.000Z", cancelled_by: "k1" }) as never);
    expect(text).toMatch(/^id {7,}0b7c6f7e/);
    expect(text).toMatch(/^finished +2025-01-01T00:00:04.000Z \(3.0s\)$/m);
    expect(text).toMatch(/^cancelled by +k1$/m);
    expect(text).toMatch(/^result +\{\n +"warehouse": "WH-3"\n +\}$/m);
  });

  it("writes a step as one line: model, stop reason, tokens, cost and time; or tool, outcome, input and output", () => {
    expect(stepLine(llm(1) as never)).toBe("#1  llm   claude-haiku-5-5 (main)  tool_use  10/5 tok  $0.000100  412ms  looking it up → lookup_order");
    expect(stepLine(tool(2) as never)).toBe('#2  tool  lookup_order  ok  3ms  {"order_id":"ORD-7"} → {"sku":"A-1"}');
  });

  it("sums a finished task up in one line, then its result or its error", () => {
    expect(progressLine(task({ steps: 4, usage: { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 0, cost_usd: 0.0123 } }) as never)).toBe("step 4 · running · 100/20 tok · $0.0123");
    expect(outcomeText(task({ status: "failed", steps: 1, error: { type: "tool_error", message: "boom" }, finished_at: "2025-01-01T00:00:03.000Z" }) as never)).toBe(
      "failed · 1 step · 0/0 tok · $0.000000 · 2.0s\nerror: tool_error: boom",
    );
  });
});
