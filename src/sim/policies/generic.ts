/**
 * The policy for any agent without a scripted one, so that any agent can be
 * load-tested offline: the tools offered in the request are called one per
 * turn, in the order offered, each once, with an input generated from the
 * tool's JSON Schema; then a text answer quotes the last tool result. A request
 * without tools is answered with text at once.
 *
 * Like every policy it is a function of the conversation alone: which tools
 * were called is read from the messages, so a resumed task (its conversation
 * replayed from checkpoints) goes on with the next tool, never one twice.
 */
import { pastToolCalls, textOf, textTurn, toolTurn, type PolicyRequest, type PolicyRoute, type SimTurn } from "../policy";
import { inputFromSchema } from "../schemaInput";

/** Longest quote of the user's words or of a tool result; `max_tokens` may cut the answer shorter still. */
const QUOTE_CHARS = 1000;

const quote = (text: string): string => {
  const flat = text.trim().replace(/\s+/g, " ");
  return flat.length > QUOTE_CHARS ? `${flat.slice(0, QUOTE_CHARS)}…` : flat;
};

export function genericPolicy(req: PolicyRequest): SimTurn {
  const offered = req.tools ?? [];
  const calls = pastToolCalls(req.messages);
  const called = new Set(calls.map((c) => c.name));
  const index = offered.findIndex((t) => !called.has(t.name));
  const next = offered[index];
  if (next)
    return toolTurn(req, `Calling ${next.name} (tool ${index + 1} of ${offered.length}).`, [{ name: next.name, input: inputFromSchema(next.input_schema) }]);

  const last = calls.at(-1);
  if (last) {
    const outcome = last.result === undefined ? "gave no result" : last.result.isError ? "failed" : "answered";
    const said = last.result === undefined ? "" : `: "${quote(last.result.text)}"`;
    return textTurn(`Done after ${called.size} tool${called.size === 1 ? "" : "s"}. The last, ${last.name}, ${outcome}${said}`);
  }
  const lastUser = [...req.messages].reverse().find((m) => m.role === "user");
  const userSaid = lastUser ? quote(textOf(lastUser.content)) : "";
  if (!userSaid) return textTurn("This is the simulated model. There is nothing more to do.");
  return textTurn(`This is the simulated model. You said: "${userSaid}"`);
}

export const genericRoute: PolicyRoute = { name: "generic", matches: () => true, policy: genericPolicy };
