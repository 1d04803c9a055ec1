/**
 * The MCP SDK's client side, loaded on first use. Only the executor role uses it; every
 * other role's process imports this folder with the rest of the node and, without this,
 * would load the SDK at start for nothing (start-up time and memory). `require`, not
 * `import()`: Clawfleet's package is CommonJS, and it resolves the same from the
 * sources and from dist/ (app/cli.ts).
 */
import type * as ClientModule from "@modelcontextprotocol/sdk/client/index.js";
import type * as StdioModule from "@modelcontextprotocol/sdk/client/stdio.js";
import type * as HttpModule from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type * as TypesModule from "@modelcontextprotocol/sdk/types.js";

export interface McpSdk {
  client: typeof ClientModule;
  stdio: typeof StdioModule;
  http: typeof HttpModule;
  types: typeof TypesModule;
}

let loaded: McpSdk | undefined;

/** The SDK, loaded by the first caller. */
export function mcpSdk(): McpSdk {
  /* eslint-disable @typescript-eslint/no-require-imports */
  loaded ??= {
    client: require("@modelcontextprotocol/sdk/client/index.js") as typeof ClientModule,
    stdio: require("@modelcontextprotocol/sdk/client/stdio.js") as typeof StdioModule,
    http: require("@modelcontextprotocol/sdk/client/streamableHttp.js") as typeof HttpModule,
    types: require("@modelcontextprotocol/sdk/types.js") as typeof TypesModule,
  };
  /* eslint-enable @typescript-eslint/no-require-imports */
  return loaded;
}

/** The SDK if this process has loaded it: an error of one of its classes can only come from a process that did. */
export function loadedMcpSdk(): McpSdk | undefined {
  return loaded;
}
