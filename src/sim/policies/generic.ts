/** The fallback policy: a short, deterministic text answer for any agent without a policy of its own. */
import { textOf, textTurn, type PolicyRoute, type SimTurn, type PolicyRequest } from "../policy";

const QUOTE_CHARS = 80;

export function genericPolicy(req: PolicyRequest): SimTurn {
  const lastUser = [...req.messages].reverse().find((m) => m.role === "user");
  const said = lastUser ? textOf(lastUser.content).trim().replace(/\s+/g, " ") : "";
  if (!said) return textTurn("This is the simulated model. There is nothing more to do.");
  const quote = said.length > QUOTE_CHARS ? `${said.slice(0, QUOTE_CHARS)}…` : said;
  return textTurn(`This is the simulated model. You said: "${quote}"`);
}

export const genericRoute: PolicyRoute = { name: "generic", matches: () => true, policy: genericPolicy };
