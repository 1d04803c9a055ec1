/** The mixins users and Clawfleet's roles share (`clawfleet/mixins`). */
export { ClawfleetTools, type ClawfleetToolsHandle, type ClawfleetToolsOptions, type ClawfleetToolsService } from "./tools.mixin";
export { MAX_TOOL_TIMEOUT_MS, type ToolBlock } from "../src/tools/toolBlock";
export type { ToolCallMeta } from "../src/tools/sources/services";
