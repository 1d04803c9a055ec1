/**
 * The Messages API request as the simulator accepts it: the fields and block
 * types Clawfleet sends, validated the way the API does (missing fields, wrong
 * types, tool_use/tool_result pairing), so a client bug surfaces here as the same
 * 400 it would meet in production. Unmodelled optional fields pass through.
 */
import { z } from "zod";

const TextBlock = z.looseObject({ type: z.literal("text"), text: z.string() });
const MediaSource = z.looseObject({ type: z.string() });
const ImageBlock = z.looseObject({ type: z.literal("image"), source: MediaSource });
const DocumentBlock = z.looseObject({ type: z.literal("document"), source: MediaSource });
const ToolUseBlock = z.looseObject({
  type: z.literal("tool_use"),
  id: z.string().min(1),
  name: z.string().min(1),
  input: z.record(z.string(), z.unknown()),
});
const ToolResultBlock = z.looseObject({
  type: z.literal("tool_result"),
  tool_use_id: z.string().min(1),
  content: z.union([z.string(), z.array(z.discriminatedUnion("type", [TextBlock, ImageBlock, DocumentBlock]))]).optional(),
  is_error: z.boolean().optional(),
});
const ThinkingBlock = z.looseObject({ type: z.literal("thinking"), thinking: z.string(), signature: z.string() });
const RedactedThinkingBlock = z.looseObject({ type: z.literal("redacted_thinking"), data: z.string() });

const InputBlock = z.discriminatedUnion("type", [
  TextBlock,
  ImageBlock,
  DocumentBlock,
  ToolUseBlock,
  ToolResultBlock,
  ThinkingBlock,
  RedactedThinkingBlock,
]);

const Message = z.object({
  role: z.enum(["user", "assistant"]),
  content: z.union([z.string(), z.array(InputBlock)]),
});

const Tool = z.looseObject({
  name: z.string().regex(/^[a-zA-Z0-9_-]{1,128}$/, "tool names match ^[a-zA-Z0-9_-]{1,128}$"),
  description: z.string().optional(),
  input_schema: z.looseObject({ type: z.literal("object") }),
});

const conversationShape = {
  model: z.string().min(1),
  messages: z.array(Message).min(1, "at least one message is required"),
  system: z.union([z.string(), z.array(TextBlock)]).optional(),
  tools: z.array(Tool).optional(),
};

type Conversation = z.output<z.ZodObject<typeof conversationShape>>;

/** The pairing rules the API enforces between an assistant's tool_use blocks and the next user turn's tool_result blocks. */
function checkConversation(req: Conversation, ctx: z.core.$RefinementCtx): void {
  const names = new Set<string>();
  (req.tools ?? []).forEach((tool, i) => {
    if (names.has(tool.name)) ctx.addIssue({ code: "custom", path: ["tools", i, "name"], message: "Tool names must be unique." });
    names.add(tool.name);
  });

  const seenUseIds = new Set<string>();
  req.messages.forEach((msg, m) => {
    if (typeof msg.content === "string") return;
    const prev = req.messages[m - 1];
    const prevUseIds = new Set(
      prev && prev.role === "assistant" && typeof prev.content !== "string"
        ? prev.content.flatMap((b) => (b.type === "tool_use" ? [b.id] : []))
        : [],
    );
    msg.content.forEach((block, b) => {
      const path = ["messages", m, "content", b];
      if (block.type === "tool_use") {
        if (msg.role !== "assistant") ctx.addIssue({ code: "custom", path, message: "`tool_use` blocks can only be in `assistant` messages" });
        if (seenUseIds.has(block.id)) ctx.addIssue({ code: "custom", path, message: "`tool_use` ids must be unique" });
        seenUseIds.add(block.id);
      }
      if (block.type === "tool_result") {
        if (msg.role !== "user") ctx.addIssue({ code: "custom", path, message: "`tool_result` blocks can only be in `user` messages" });
        else if (!prevUseIds.has(block.tool_use_id))
          ctx.addIssue({
            code: "custom",
            path,
            message: `unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${block.tool_use_id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`,
          });
      }
    });

    const next = req.messages[m + 1];
    if (msg.role !== "assistant" || !next) return;
    const answered = new Set(
      typeof next.content === "string" ? [] : next.content.flatMap((b) => (b.type === "tool_result" ? [b.tool_use_id] : [])),
    );
    const missing = msg.content.flatMap((b) => (b.type === "tool_use" && !answered.has(b.id) ? [b.id] : []));
    if (missing.length > 0)
      ctx.addIssue({
        code: "custom",
        path: ["messages", m],
        message: `\`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(", ")}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`,
      });
  });
}

export const MessagesRequestSchema = z
  .looseObject({
    ...conversationShape,
    max_tokens: z.number().int().min(1),
    stream: z.boolean().optional(),
    stop_sequences: z.array(z.string()).optional(),
    temperature: z.number().min(0).max(1).optional(),
    tool_choice: z.looseObject({ type: z.enum(["auto", "any", "tool", "none"]) }).optional(),
    metadata: z.looseObject({}).optional(),
  })
  .superRefine(checkConversation);

export const CountTokensRequestSchema = z.looseObject(conversationShape).superRefine(checkConversation);

export type MessagesRequest = z.output<typeof MessagesRequestSchema>;
export type CountTokensRequest = z.output<typeof CountTokensRequestSchema>;
export type RequestMessage = MessagesRequest["messages"][number];
export type RequestBlock = Exclude<RequestMessage["content"], string>[number];
export type ToolResultContent = Extract<RequestBlock, { type: "tool_result" }>["content"];

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

/** Validates like the API and words the first problem like it: `messages.0.content: Field required`. */
export function parseRequest<T>(schema: z.ZodType<T>, body: unknown): Parsed<T> {
  const result = schema.safeParse(body, {
    error: (iss) => (iss.code === "invalid_type" && iss.input === undefined ? "Field required" : undefined),
  });
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  if (!issue) return { ok: false, message: "invalid request" };
  const path = issue.path.map(String).join(".");
  return { ok: false, message: path ? `${path}: ${issue.message}` : issue.message };
}
