/**
 * What validating a task's params costs where they cross processes: each model call's request as the
 * rate gateway checks it (`rate-gateway.complete`: the whole conversation so far), each answer as the
 * planner's `CompleteResponse`, and each checkpoint as the checkpoint role checks it
 * (`checkpoint.appendStep`). The task is the order-router's stored one
 * (test/fixtures/checkpoints/order-router.v1.json: 13 steps, 6 model turns, 7 tool results), its
 * requests rebuilt turn by turn as the planner sends them.
 *
 * Two forms of the same schemas, measured in the same run, each round both, the one that goes first
 * alternating from round to round:
 * - as shipped: content blocks and messages are unions discriminated by `type` (`role`), so each value
 *   is checked against its one variant;
 * - variants tried in turn: `z.union` of the same variants, the form they had before. A block is tried
 *   against each variant until one passes, and each that fails builds its issues first.
 *
 * Printed: CPU µs per validation of each kind (the process's user+system time over `--n` validations,
 * after as many to warm up), and per task: its 6 requests, 6 answers and 13 checkpoints.
 *
 *   npx tsx bench/validation.ts [--n 20000] [--rounds 3]
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import {
  CompleteRequestSchema,
  CompleteResponseSchema,
  ContentBlockSchema,
  LlmStepDataSchema,
  STORE_METHODS,
  UserBlockSchema,
  type CompleteRequest,
  type CompleteResponse,
  type MessageParam,
  type StepRecord,
} from "../src/contracts";

const { values: args } = parseArgs({ options: { n: { type: "string", default: "20000" }, rounds: { type: "string", default: "3" } } });
const N = Number(args.n);
const ROUNDS = Number(args.rounds);

const FIXTURE = path.join(__dirname, "..", "test", "fixtures", "checkpoints", "order-router.v1.json");
const fixture = JSON.parse(fs.readFileSync(FIXTURE, "utf8")) as { task: { id: string }; steps: StepRecord[]; expected: { messages: MessageParam[] } };
const conversation = fixture.expected.messages;

/** The order-router's four tools, as offered to the model. */
const TOOLS = ["lookup_order", "list_warehouses", "check_inventory", "route_order"].map((name) => ({
  name,
  description: `The order-router's ${name} tool.`,
  input_schema: { type: "object", properties: { order_id: { type: "string" }, warehouse_id: { type: "string" }, sku: { type: "string" } }, required: ["order_id"] },
}));

/** The request of each model turn: the conversation up to the turn's assistant message. */
const requests: CompleteRequest[] = conversation.flatMap((m, i) =>
  m.role !== "assistant"
    ? []
    : [
        {
          taskId: fixture.task.id,
          agent: "order-router",
          promptVersion: "3f9c2a1b",
          step: i,
          tier: "reason",
          model: "claude-sonnet-5-5",
          maxTokens: 1024,
          priority: "normal",
          system: "You route customer orders to the warehouse that can ship them soonest. ".repeat(8),
          messages: conversation.slice(0, i),
          tools: TOOLS,
        },
      ],
);
/** Each turn's answer, as the gateway sends it back. */
const answers: CompleteResponse[] = fixture.steps.flatMap((s) =>
  s.kind !== "llm"
    ? []
    : [{ id: "msg_01", model: s.data.model, content: s.data.content, stop_reason: s.data.stop_reason, usage: s.data.usage, duration_ms: s.data.duration_ms }],
);
/** Each checkpoint as the planner sends it. */
const appends = fixture.steps.map((s) => ({ taskId: s.task_id, fence: s.fence, step: { kind: s.kind, step: s.step, data: s.data } }));

/** The same schemas with their blocks and messages as unions whose variants are tried in turn. */
function triedInTurn() {
  const blocks = z.union(ContentBlockSchema.options);
  const userBlocks = z.union(UserBlockSchema.options);
  const messages = z.union([
    z.object({ role: z.literal("user"), content: z.union([z.string(), z.array(userBlocks)]) }),
    z.object({ role: z.literal("assistant"), content: z.array(blocks) }),
  ]);
  const llmData = LlmStepDataSchema.extend({ content: z.array(blocks) });
  const appendParams = STORE_METHODS.appendStep.params;
  const steps = appendParams.shape.step.options;
  return {
    request: CompleteRequestSchema.extend({ messages: z.array(messages) }),
    answer: CompleteResponseSchema.extend({ content: z.array(blocks) }),
    append: appendParams.extend({
      step: z.discriminatedUnion("kind", [steps[0].extend({ data: llmData }), steps[1]]),
    }),
  };
}

const forms = {
  "as shipped": { request: CompleteRequestSchema as z.ZodType, answer: CompleteResponseSchema as z.ZodType, append: STORE_METHODS.appendStep.params as z.ZodType },
  "variants tried in turn": triedInTurn() as Record<"request" | "answer" | "append", z.ZodType>,
};

/** CPU µs per validation of every value of `values` with `schema`, `N` validations in all. */
function cpuPerParse(schema: z.ZodType, values: readonly unknown[]): number {
  const run = (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = schema.safeParse(values[i % values.length]);
      if (!r.success) throw new Error(`a valid value was refused: ${r.error.message}`);
    }
  };
  run(N);
  const t0 = process.cpuUsage();
  run(N);
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / N;
}

const bytes = (values: readonly unknown[]) => Math.round(values.reduce<number>((s, v) => s + JSON.stringify(v).length, 0) / values.length);
process.stdout.write(
  `validation bench: the order-router task of ${path.relative(process.cwd(), FIXTURE)}: ${requests.length} requests (${bytes(requests)} B of JSON on average), ` +
    `${answers.length} answers (${bytes(answers)} B), ${appends.length} checkpoints (${bytes(appends)} B); ${N} validations per figure\n`,
);
for (let round = 1; round <= ROUNDS; round++) {
  const order = Object.entries(forms);
  if (round % 2 === 0) order.reverse();
  for (const [name, f] of order) {
    const request = cpuPerParse(f.request, requests);
    const answer = cpuPerParse(f.answer, answers);
    const append = cpuPerParse(f.append, appends);
    const perTask = request * requests.length + answer * answers.length + append * appends.length;
    process.stdout.write(
      `  round ${round}, ${name.padEnd(22)} CPU µs per validation: request ${request.toFixed(1)}, answer ${answer.toFixed(1)}, checkpoint ${append.toFixed(1)}; ` +
        `per task ${perTask.toFixed(0)} µs\n`,
    );
  }
}
