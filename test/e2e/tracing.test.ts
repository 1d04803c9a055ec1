/**
 * tracing - each role in its own OS process (as in distributed.test.ts), exporting
 * OTLP/HTTP JSON to a receiver in this test: one trace per task whatever processes
 * it crosses, with the GenAI span tree, the same trace after a planner is killed
 * (kill -9) mid-task and another resumes it; and every process's /metrics passes
 * `promtool check metrics` and exports every series the alerts and dashboard use.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { orderIds } from "../../examples/order-router/lib/data";
import { inputHash } from "../../src/telemetry/inputHash";
import { getJson, ROOT, startRoleProcesses, stopAll, submitTask, waitForTasks, type NodeProcess, type TaskJson } from "../../testkit/cluster";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../../testkit/otlpReceiver";
import { exportedNames, hasPromtool, promtoolCheckMetrics, referencedNames } from "../helpers/promtool";
import { createScratch, hasService, type Scratch } from "../helpers/services";
import { spawnSync } from "node:child_process";
import os from "node:os";

const ready = hasService("postgres") && hasService("redis") && hasService("nats");
const SERVER = 2;
const INTERNAL = 1;
const CLIENT = 3;

interface StepJson {
  step: number;
  kind: "llm" | "tool";
  tool?: string;
  tool_use_id?: string;
  input?: unknown;
  model?: string;
}

describe.skipIf(!ready)("tracing - one trace per task across processes", () => {
  let scratch: Scratch;
  let rx: OtlpReceiver;
  const nodes: NodeProcess[] = [];
  let base: string;

  const spansOf = (taskId: string) => rx.spans.filter((s) => s.attributes["clawfleet.task.id"] === taskId);
  const alive = () => nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);

  /** Spans arrive in batches (OTEL_BSP_SCHEDULE_DELAY=100): wait until `done` holds for a task's spans. */
  async function spansWhen(taskId: string, done: (spans: ReceivedSpan[]) => boolean, timeoutMs = 10_000): Promise<ReceivedSpan[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const spans = spansOf(taskId);
      if (done(spans) || Date.now() > deadline) return spans;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  beforeAll(async () => {
    rx = await startOtlpReceiver();
    scratch = await createScratch("e2etrace");
    base = await startRoleProcesses(nodes, (services) => ({
      ...scratch.env(services),
      // Slow enough for a kill to land mid-task.
      CLAWFLEET_SIM_LATENCY_MS: "150",
      // The default lease: a shorter one can lapse on a loaded 2-core machine and add an attempt
      // (a planner stops calling once its lease may have lapsed), which the first test rules out.
      CLAWFLEET_LEASE_TTL_MS: "5000",
      CLAWFLEET_REAPER_INTERVAL_MS: "300",
      OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
      OTEL_BSP_SCHEDULE_DELAY: "100",
    }));
  }, 120_000);

  afterAll(async () => {
    await stopAll(nodes);
    await scratch?.remove();
    await rx?.close();
  }, 60_000);

  it("gives each task one trace: the submission's invoke_agent root, one invoke_agent per attempt, chat per LLM call, execute_tool under the turn that asked", async () => {
    const orders = orderIds().slice(300, 306);
    // One client brings its own traceparent: the task still gets a trace of its own (a header is client
    // input: adopted as parent, it would let any client graft spans onto a trace it does not own), linked
    // to the caller's span.
    const clientTrace = "5a9e1c0f00000000000000000000beef";
    const clientSpan = "00000000c0ffee01";
    const submitted = await Promise.all(
      orders.map((o, i) =>
        submitTask(base, { agent: "order-router", input: { order_id: o } }, i === 0 ? { traceparent: `00-${clientTrace}-${clientSpan}-01` } : {}),
      ),
    );
    const ids = submitted.map((s) => s.id);
    const done = await waitForTasks(base, ids, 60_000);
    expect([...done.values()].map((t) => t.status)).toEqual(ids.map(() => "succeeded"));

    for (const [i, id] of ids.entries()) {
      const task = done.get(id) as TaskJson;
      // One attempt each (a lease lost to a stalled machine would make two: that shape is the next test's).
      expect(task.attempts, `task ${id}`).toBe(1);
      const { steps } = await getJson<{ steps: StepJson[] }>(`${base}/v1/tasks/${id}/steps`);
      const llmSteps = steps.filter((s) => s.kind === "llm");
      const toolSteps = steps.filter((s) => s.kind === "tool");
      // Every process exports on its own schedule: wait for the whole tree.
      const spans = await spansWhen(
        id,
        (ss) =>
          ss.filter((s) => s.name.startsWith("invoke_agent")).length === 2 &&
          ss.filter((s) => s.name.startsWith("chat ")).length === llmSteps.length &&
          ss.filter((s) => s.name.startsWith("execute_tool ")).length === toolSteps.length,
      );
      const where = `task ${id}: ${spans.map((s) => s.name).join(", ")}`;

      // One trace for the task, crossing api, planner, gateway and executor processes.
      expect(new Set(spans.map((s) => s.traceId)).size, where).toBe(1);
      expect(new Set(spans.map((s) => s.service))).toEqual(
        new Set(["clawfleet-api+intake+metrics", "clawfleet-planner", "clawfleet-rate-gateway", "clawfleet-executor+tools"]),
      );

      const roots = spans.filter((s) => s.kind === SERVER);
      expect(roots, where).toHaveLength(1);
      const root = roots[0] as ReceivedSpan;
      expect(root).toMatchObject({ name: "invoke_agent order-router", service: "clawfleet-api+intake+metrics" });
      expect(root.attributes).toMatchObject({
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "order-router",
        "clawfleet.prompt_version": task.prompt_version,
        "clawfleet.task.created": true,
        "http.response.status_code": 202,
      });
      expect(root.parentSpanId).toBeUndefined();
      expect(root.traceId).not.toBe(clientTrace);
      expect(root.links).toEqual(i === 0 ? [{ traceId: clientTrace, spanId: clientSpan }] : []);

      const attempts = spans.filter((s) => s.kind === INTERNAL && s.name === "invoke_agent order-router");
      expect(attempts, where).toHaveLength(1);
      const attempt = attempts[0] as ReceivedSpan;
      expect(attempt).toMatchObject({ parentSpanId: root.spanId, service: "clawfleet-planner", statusCode: 0 });
      expect(attempt.attributes).toMatchObject({
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "order-router",
        "gen_ai.conversation.id": id,
        "clawfleet.prompt_version": task.prompt_version,
        "clawfleet.attempt": 1,
        "clawfleet.outcome": "succeeded",
      });

      // One chat span per LLM call, a child of the attempt, made by the gateway.
      const chats = spans.filter((s) => s.name.startsWith("chat "));
      expect(chats.map((s) => s.attributes["clawfleet.step"]).sort((a, b) => Number(a) - Number(b)), where).toEqual(llmSteps.map((s) => s.step));
      for (const chat of chats) {
        const step = llmSteps.find((s) => s.step === chat.attributes["clawfleet.step"]) as StepJson;
        expect(chat).toMatchObject({ kind: CLIENT, parentSpanId: attempt.spanId, service: "clawfleet-rate-gateway", name: `chat ${String(chat.attributes["gen_ai.request.model"])}` });
        expect(chat.attributes).toMatchObject({
          "gen_ai.operation.name": "chat",
          "gen_ai.provider.name": "anthropic",
          "gen_ai.response.model": step.model,
          "clawfleet.task.id": id,
          "clawfleet.prompt_version": task.prompt_version,
        });
        expect(chat.attributes["gen_ai.request.max_tokens"]).toBeGreaterThan(0);
        expect(chat.attributes["gen_ai.usage.input_tokens"]).toBeGreaterThan(0);
        expect(chat.attributes["gen_ai.usage.output_tokens"]).toBeGreaterThan(0);
        expect(chat.attributes["gen_ai.response.finish_reasons"]).toEqual([expect.stringMatching(/^(tool_use|end_turn)$/)]);
      }

      // One execute_tool span per tool call, a child of the chat span of the turn that asked for it.
      const tools = spans.filter((s) => s.name.startsWith("execute_tool "));
      expect(tools, where).toHaveLength(toolSteps.length);
      for (const ts of toolSteps) {
        const span = tools.find((s) => s.attributes["clawfleet.step"] === ts.step);
        const asking = Math.max(...llmSteps.filter((s) => s.step < ts.step).map((s) => s.step));
        const parent = chats.find((c) => c.attributes["clawfleet.step"] === asking);
        expect(span, `${where}: tool step ${ts.step}`).toMatchObject({ name: `execute_tool ${ts.tool}`, kind: INTERNAL, service: "clawfleet-executor+tools", parentSpanId: parent?.spanId });
        expect(span?.attributes).toMatchObject({
          "gen_ai.operation.name": "execute_tool",
          "gen_ai.tool.name": ts.tool,
          "gen_ai.tool.call.id": ts.tool_use_id,
          "clawfleet.tool.input_hash": inputHash(ts.input),
          "clawfleet.prompt_version": task.prompt_version,
        });
        expect(span?.attributes["clawfleet.tool.output_bytes"]).toBeGreaterThan(0);
      }
    }
    expect(rx.rejected).toBe(0);
  }, 90_000);

  it("continues the same trace when the planner running a task is killed (kill -9) and another resumes it", async () => {
    const [order] = orderIds().slice(320, 321);
    const { id } = await submitTask(base, { agent: "order-router", input: { order_id: order } });

    // Mid-task: a few steps checkpointed, the rest to come.
    const deadline = Date.now() + 20_000;
    let victim: NodeProcess | undefined;
    while (!victim && Date.now() < deadline) {
      const { steps } = await getJson<{ steps: StepJson[] }>(`${base}/v1/tasks/${id}/steps`);
      if (steps.length >= 3) victim = alive().find((n) => n.name.startsWith("planner") && n.output().includes(id));
      if (!victim) await new Promise((r) => setTimeout(r, 30));
    }
    if (!victim) throw new Error(`no planner took task ${id}`);
    victim.kill("SIGKILL");
    await victim.exited;
    const survivor = alive().find((n) => n.name.startsWith("planner")) as NodeProcess;

    const done = await waitForTasks(base, [id], 45_000);
    const task = done.get(id);
    expect(task?.status).toBe("succeeded");
    expect(task?.attempts).toBe(2);

    const { steps } = await getJson<{ steps: StepJson[] }>(`${base}/v1/tasks/${id}/steps`);
    const llmSteps = steps.filter((s) => s.kind === "llm").map((s) => s.step);
    const isResumed = (s: ReceivedSpan) => s.kind === INTERNAL && s.name === "invoke_agent order-router" && s.attributes["clawfleet.attempt"] === 2;
    // Every process exports on its own schedule: wait for the resumed attempt and all of its LLM calls.
    const spans = await spansWhen(id, (ss) => {
      const attempt = ss.find(isResumed);
      if (!attempt) return false;
      const from = Number(attempt.attributes["clawfleet.resumed_at_step"]);
      return ss.filter((s) => s.name.startsWith("chat ") && s.parentSpanId === attempt.spanId).length === llmSteps.filter((s) => s >= from).length;
    });
    const where = spans.map((s) => `${s.service} ${s.name} step=${String(s.attributes["clawfleet.step"])}`).join("\n");
    // Before and after the kill: one trace id.
    expect(new Set(spans.map((s) => s.traceId)).size, where).toBe(1);
    const root = spans.find((s) => s.kind === SERVER) as ReceivedSpan;
    const resumed = spans.find(isResumed) as ReceivedSpan;
    expect(resumed, where).toBeDefined();
    expect(resumed.parentSpanId).toBe(root.spanId);
    const resumedAt = Number(resumed.attributes["clawfleet.resumed_at_step"]);
    expect(resumedAt).toBeGreaterThan(1);

    // The killed attempt's own span never ended, but its LLM calls (made by the gateway) did: they sit in
    // the same trace under the first attempt's span id (one more, for the step in flight at the kill, may
    // have finished after it); every LLM step from the resume on is a call under the second attempt.
    const chats = spans.filter((s) => s.name.startsWith("chat "));
    const stepOf = (c: ReceivedSpan) => Number(c.attributes["clawfleet.step"]);
    const second = chats.filter((c) => c.parentSpanId === resumed.spanId);
    const first = chats.filter((c) => c.parentSpanId !== resumed.spanId);
    expect(second.map(stepOf).sort((a, b) => a - b), where).toEqual(llmSteps.filter((s) => s >= resumedAt));
    expect(llmSteps.filter((s) => s < resumedAt).every((s) => first.some((c) => stepOf(c) === s)), where).toBe(true);
    expect(first.length, where).toBeGreaterThan(0);
    expect(first.every((c) => stepOf(c) <= resumedAt), where).toBe(true);
    // All of them under one span: the first attempt's, which the kill never let end (so it is not exported).
    const firstAttempt = new Set(first.map((c) => c.parentSpanId));
    expect(firstAttempt.size, where).toBe(1);
    expect(spans.some((s) => firstAttempt.has(s.spanId)), where).toBe(false);

    // The survivor counted the resume, with the task's labels.
    const metrics = await (await fetch(`http://127.0.0.1:${survivor.port}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`clawfleet_task_resumes_total\\{agent="order-router",prompt_version="${task?.prompt_version}"[^}]*\\} 1`));
  }, 90_000);

  it("exports on every process a /metrics that passes promtool check metrics, with every series the alerts and the dashboard name", async () => {
    const scrapes = new Map<string, string>();
    for (const n of alive()) scrapes.set(n.name, await (await fetch(`http://127.0.0.1:${n.port}/metrics`)).text());

    // Task-level series carry agent and prompt_version, recorded where the work happens.
    const planner = [...scrapes.entries()].filter(([k]) => k.startsWith("planner")).map(([, v]) => v).join("\n");
    const labelled = (name: string) => new RegExp(`^${name}\\{[^}]*agent="order-router"[^}]*prompt_version="[0-9a-f]{12}"[^}]*\\} [0-9.e+-]+$`, "m");
    for (const name of ["clawfleet_tasks_succeeded_total", "clawfleet_task_duration_seconds_count", "clawfleet_task_steps_count", "clawfleet_task_tool_calls_count", "clawfleet_steps_total", "clawfleet_task_attempts_total"]) {
      expect(planner, name).toMatch(labelled(name));
    }
    const gateway = scrapes.get("rate-gateway") ?? "";
    for (const name of ["clawfleet_llm_calls_total", "clawfleet_llm_tokens_total", "clawfleet_llm_cost_usd_total", "clawfleet_llm_call_duration_seconds_bucket", "clawfleet_llm_token_usage_bucket", "clawfleet_rate_limit_wait_seconds_count"]) {
      expect(gateway, name).toMatch(labelled(name));
    }
    expect(gateway).toMatch(/^clawfleet_llm_call_duration_seconds_bucket\{[^}]*le="81.92"/m);
    expect(gateway).toMatch(/^clawfleet_llm_token_usage_bucket\{[^}]*le="67108864"/m);
    const executor = scrapes.get("executor") ?? "";
    expect(executor).toMatch(labelled("clawfleet_tool_calls_total"));
    expect(executor).toMatch(labelled("clawfleet_tool_duration_seconds_count"));
    const api = scrapes.get("api") ?? "";
    expect(api).toMatch(/^clawfleet_queue_messages\{[^}]*state="waiting"[^}]*\} \d+/m);
    expect(api).toMatch(/^clawfleet_queue_consumer_lag_seconds\{[^}]*\} [0-9.e+-]+$/m);
    expect(planner).toMatch(/^clawfleet_leases_held\{[^}]*\} \d+$/m);

    // Every metric the alert rules and the dashboard refer to is exported by some process.
    const exported = new Set([...scrapes.values()].flatMap((s) => [...exportedNames(s)]));
    const alerts = fs.readFileSync(path.join(ROOT, "ops/prometheus/alerts.yml"), "utf8");
    const dashboard = fs.readFileSync(path.join(ROOT, "ops/grafana/clawfleet.json"), "utf8");
    const referenced = new Set([...referencedNames(alerts), ...referencedNames(dashboard)]);
    expect(referenced.size).toBeGreaterThan(20);
    expect([...referenced].filter((n) => !exported.has(n))).toEqual([]);

    if (!hasPromtool()) return;
    for (const [name, scrape] of scrapes) {
      const r = promtoolCheckMetrics(scrape);
      expect(r, `${name}: promtool check metrics\n${r.output}`).toMatchObject({ status: 0 });
    }
    // The dashboard's queries parse (as recording rules, with its variables filled in).
    const queries = (JSON.parse(dashboard) as { panels: Array<{ targets?: Array<{ expr: string }> }> }).panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
    const rulesFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "dash-")), "dashboard.rules.yml");
    const yaml = queries
      .map((q, i) => `      - record: dashboard:query${i}\n        expr: ${JSON.stringify(q.replaceAll("$__rate_interval", "5m").replaceAll('"$agent"', '".*"').replaceAll('"$prompt_version"', '".*"'))}`)
      .join("\n");
    fs.writeFileSync(rulesFile, `groups:\n  - name: dashboard\n    rules:\n${yaml}\n`);
    const check = spawnSync("promtool", ["check", "rules", rulesFile], { encoding: "utf8" });
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
  }, 30_000);
});
