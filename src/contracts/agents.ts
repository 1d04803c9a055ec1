/** An agent as the cluster serves it, for operators (the `intake.agents` action, `clawfleet repl`'s `agents`). */
import { z } from "zod";

export const AgentSummarySchema = z.object({
  name: z.string(),
  description: z.string(),
  /** The agent file's content hash, carried by every task it runs. */
  prompt_version: z.string(),
  /** The allow-list: the only tools the model may have run. */
  tools: z.array(z.string()),
  /** MCP servers whose tools it is offered (`<server>__<tool>`). */
  mcp_servers: z.array(z.string()),
  default_tier: z.string(),
  /** Model per tier. */
  tiers: z.record(z.string(), z.string()),
});
export type AgentSummary = z.infer<typeof AgentSummarySchema>;
