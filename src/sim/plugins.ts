/**
 * Scripted policies from outside Clawfleet: a module (JavaScript, or TypeScript
 * where tsx is installed) that exports `routes`, an array of `PolicyRoute`
 * (`{name, matches(req), policy(req)}`), or that array as its default export.
 * The simulated model tries the routes of every module in the order given and
 * answers any request none of them accepts with the generic policy.
 */
import path from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { ConfigError } from "../errors";
import type { PolicyRoute } from "./policy";

const TYPESCRIPT = /\.[cm]?tsx?$/;

const fn = z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "expected a function");
const RouteSchema = z.object({ name: z.string().min(1), matches: fn, policy: fn });
const RoutesSchema = z.array(RouteSchema).min(1, "expected at least one route");

type TsImport = (specifier: string, parent: string) => Promise<unknown>;

/** tsx's `tsImport`, through tsx's ES module entry (its CommonJS one cannot register the loader on Node 20). */
async function tsImporter(file: string, source: string): Promise<TsImport> {
  try {
    const { tsImport } = (await import("tsx/esm/api")) as { tsImport: TsImport };
    return tsImport;
  } catch {
    throw new ConfigError(source, `${file} is TypeScript and tsx is not installed: install tsx, or compile the file to JavaScript`);
  }
}

async function loadModule(file: string, source: string, cwd: string): Promise<unknown> {
  const url = pathToFileURL(file).href;
  if (!TYPESCRIPT.test(file)) return (await import(url)) as unknown;
  // A process that runs its own TypeScript through a require hook (Clawfleet from its sources, under
  // tsx) loads the module the same way, sharing its modules; a second, ES module loader beside that
  // hook would load them again, and trip over its own interop.
  // Deprecated, yet the one way to ask whether such a hook is in place.
  if (require.extensions[".ts"] !== undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require(file) as unknown;
    } catch (err) {
      // A .ts hook that does not compile TypeScript (a test runner's): fall through to tsx.
      if (!(err instanceof SyntaxError)) throw err;
    }
  }
  return (await tsImporter(file, source))(url, pathToFileURL(path.join(cwd, "index.js")).href);
}

/** `routes`, or the default export's (an `import()` of CommonJS nests `module.exports` under `default`). */
function routesOf(mod: unknown): unknown {
  let v = mod;
  for (let depth = 0; depth < 3; depth++) {
    if (Array.isArray(v)) return v;
    if (typeof v !== "object" || v === null) return undefined;
    const m = v as { routes?: unknown; default?: unknown };
    if (m.routes !== undefined) return m.routes;
    v = m.default;
  }
  return Array.isArray(v) ? v : undefined;
}

/**
 * The routes of each module, in order. `source` names the setting the files came
 * from, for error messages (`CLAWFLEET_SIM_POLICIES`, `--policies`).
 */
export async function loadSimPolicies(files: readonly string[], source = "CLAWFLEET_SIM_POLICIES", cwd = process.cwd()): Promise<PolicyRoute[]> {
  const routes: PolicyRoute[] = [];
  for (const given of files) {
    const file = path.resolve(cwd, given);
    let mod: unknown;
    try {
      mod = await loadModule(file, source, cwd);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(source, `cannot load the policy module ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const parsed = RoutesSchema.safeParse(routesOf(mod));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? ` (routes.${issue.path.join(".")})` : "";
      throw new ConfigError(source, `${file} must export \`routes\`, an array of {name, matches(req), policy(req)}${where}: ${issue?.message ?? "invalid"}`);
    }
    routes.push(...(parsed.data as PolicyRoute[]));
  }
  return routes;
}
