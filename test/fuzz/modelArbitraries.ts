/**
 * Model answers as fast-check arbitraries, for a simulated model that plays them
 * back: text of any size and shape (JSON, broken JSON, fences), tool calls with
 * known, unknown and forbidden names, ids missing, empty or repeated, inputs that
 * do or do not match the tool's schema (or are no object at all), and every stop
 * reason, including ones the API never sends.
 */
import fc from "fast-check";
import type { PolicyRequest, SimTurn } from "../../src/sim";

export type IdShape = "fresh" | "missing" | "empty" | "repeat";

export type GenBlock = { type: "text"; text: string } | { type: "tool_use"; name: string; id: IdShape; input: unknown; omitInput: boolean };

export interface GenTurn {
  content: GenBlock[];
  stop_reason: string | null;
}

const validLookup = fc.record({ id: fc.string({ minLength: 1, maxLength: 20 }), count: fc.integer({ min: 0, max: 5 }) }, { requiredKeys: ["id"] });
const validRecord = fc.record({ note: fc.string({ maxLength: 30 }), level: fc.constantFrom("a", "b") });

const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 60 }) },
  fc.fullUnicodeString({ maxLength: 40 }),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.object({ maxDepth: 2 }).map((v) => `Here is the answer:\n\`\`\`json\n${JSON.stringify(v)}\n\`\`\``),
  fc.tuple(fc.jsonValue({ maxDepth: 2 }), fc.nat()).map(([v, cut]) => {
    const s = JSON.stringify({ answer: v });
    return s.slice(0, 1 + (cut % s.length));
  }),
  fc.constantFrom("", " ", "{", "}", "{{{{", '{"a": }', "{} {", "\u0000", "\ud800", "null"),
  // Long answers: the sim cuts what does not fit in max_tokens and says so (stop_reason max_tokens).
  fc.integer({ min: 1_000, max: 40_000 }).map((n) => "x".repeat(n)),
  fc.integer({ min: 500, max: 8_000 }).map((n) => "{".repeat(n)),
);

const toolUse: fc.Arbitrary<GenBlock> = fc.record({
  type: fc.constant("tool_use" as const),
  name: fc.oneof(
    { weight: 5, arbitrary: fc.constant("lookup") },
    { weight: 3, arbitrary: fc.constant("record") },
    fc.constantFrom("secret_tool", "no_such_tool", "LOOKUP", "lookup ", "look-up", "a".repeat(64)),
    fc.stringMatching(/^[a-zA-Z0-9_-]{1,20}$/),
  ),
  id: fc.oneof({ weight: 8, arbitrary: fc.constant<IdShape>("fresh") }, fc.constantFrom<IdShape>("missing", "empty", "repeat")),
  input: fc.oneof(
    { weight: 4, arbitrary: validLookup },
    { weight: 3, arbitrary: validRecord },
    fc.object({ maxDepth: 2, maxKeys: 4 }),
    fc.record({ id: fc.oneof(fc.integer(), fc.constant(""), fc.string({ minLength: 21, maxLength: 40 })), extra: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }),
    fc.record({ note: fc.jsonValue({ maxDepth: 1 }), level: fc.string({ maxLength: 3 }) }, { requiredKeys: [] }),
    fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 })),
  ),
  omitInput: fc.oneof({ weight: 15, arbitrary: fc.constant(false) }, fc.constant(true)),
});

const block: fc.Arbitrary<GenBlock> = fc.oneof(fc.record({ type: fc.constant("text" as const), text }), toolUse);

export const genTurn: fc.Arbitrary<GenTurn> = fc.record({
  content: fc.array(block, { maxLength: 4 }),
  stop_reason: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom("end_turn", "tool_use") },
    fc.constantFrom("max_tokens", "stop_sequence", "refusal", "pause_turn", "no_such_reason"),
    fc.constant(null),
  ),
});

/** A task's script: the turns the model answers in order, then a plain text answer for any turn past them. */
export const genScript = fc.array(genTurn, { minLength: 1, maxLength: 5 });

/** The number of assistant turns the request already holds: which scripted turn answers it. */
export const turnIndex = (req: PolicyRequest): number => req.messages.filter((m) => m.role === "assistant").length;

/**
 * Turn `index` of a script as the sim sends it, or undefined past its end. Ids are made per task,
 * turn and block; "repeat" takes the id handed out last before it in the script (or a fixed one).
 * A function of the script alone, so a repeated request gets the same answer.
 */
export function materialize(script: readonly GenTurn[], taskKey: string, index: number): SimTurn | undefined {
  let last = `toolu_${taskKey}_repeat`;
  let out: SimTurn | undefined;
  script.slice(0, index + 1).forEach((turn, t) => {
    const content = turn.content.map((b, i) => {
      if (b.type === "text") return { type: "text", text: b.text };
      let id: string | undefined;
      if (b.id === "fresh") id = last = `toolu_${taskKey}_${t}_${i}`;
      else if (b.id === "empty") id = "";
      else if (b.id === "repeat") id = last;
      const block: Record<string, unknown> = { type: "tool_use", name: b.name, ...(id !== undefined ? { id } : {}) };
      if (!b.omitInput) block.input = b.input;
      return block;
    });
    // The sim's own type asks for well-formed blocks; these are deliberately not.
    if (t === index) out = { content, stop_reason: turn.stop_reason } as unknown as SimTurn;
  });
  return out;
}
