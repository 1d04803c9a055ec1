/**
 * An MCP tool result as the model reads it: the structured content when the
 * tool gives one (a JSON value), else its content blocks as text, one per line.
 * Blocks that are not text (images, audio, embedded binaries) are named, not
 * inlined: the tool_result the model gets is text.
 */
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";

type Block = CallToolResult["content"][number];

export function outputOf(result: CallToolResult): unknown {
  if (result.structuredContent !== undefined) return result.structuredContent;
  return textOf(result);
}

/** The content blocks as text (what an `isError` result says, too). */
export function textOf(result: CallToolResult): string {
  return result.content.map(blockText).join("\n");
}

function blockText(block: Block): string {
  switch (block.type) {
    case "text":
      return block.text;
    case "image":
    case "audio":
      return `[${block.type} ${block.mimeType}, ${Buffer.byteLength(block.data, "base64")} bytes]`;
    case "resource":
      return "text" in block.resource ? block.resource.text : `[resource ${block.resource.uri}${block.resource.mimeType ? ` (${block.resource.mimeType})` : ""}]`;
    case "resource_link":
      return `[resource link ${block.uri}${block.name ? ` "${block.name}"` : ""}]`;
    default:
      return JSON.stringify(block);
  }
}
