/**
 * The project's own Moleculer services (the `tools` role): the files `CLAWFLEET_USER_SERVICES` names
 * (src/config.ts), loaded as a service file is anywhere in Moleculer: a schema (`module.exports = {…}` or
 * `export default {…}`), a function of the broker returning one, or a `Service` subclass. CommonJS and ESM
 * alike, through `import()`; TypeScript through tsx (the one running this process, else the project's).
 *
 * A file that cannot be loaded stops start-up with an error naming it: a node that silently runs without
 * some of its tools would fail tasks much later, far from the cause.
 */
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import type { Config } from "../src/config";
import { ConfigError, messageOf } from "../src/errors";

/** What a service file exports, before the broker turns it into a service. */
export type ServiceExport = ServiceSchema | ((broker: ServiceBroker) => unknown) | (abstract new (broker: ServiceBroker) => unknown);

export interface UserService {
  /** Absolute path of the file. */
  file: string;
  service: ServiceExport;
}

const VARIABLE = "CLAWFLEET_USER_SERVICES";

type Namespace = Record<string, unknown>;

/**
 * Makes `require` load TypeScript: already so when this process runs through tsx (a source checkout);
 * otherwise through the project's tsx, registered for the process (a namespaced tsx would load a second copy
 * of modules this process has loaded already). False when the project has no tsx.
 */
function requireLoadsTypeScript(cwd: string): boolean {
  // Deprecated, yet the one way to ask whether a loader hooks .ts already.
  if (require.extensions[".ts"] !== undefined) return true;
  let api: string;
  try {
    api = require.resolve("tsx/cjs/api", { paths: [cwd] });
  } catch {
    return false;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a module found at run time, in the project
  (require(api) as { register(): unknown }).register();
  return true;
}

/** The service a module namespace holds: its default export (CommonJS `module.exports` arrives as `default`). */
function serviceOf(ns: Namespace): unknown {
  let value: unknown = ns;
  // import() of CommonJS: { default: module.exports }; compiled ESM-in-CJS adds one more `default` level.
  for (let i = 0; i < 3 && value !== null && typeof value === "object" && "default" in value; i++) {
    value = (value as Namespace).default;
  }
  return value;
}

async function importFile(file: string, cwd: string): Promise<Namespace> {
  if (/\.c?ts$/.test(file) && requireLoadsTypeScript(cwd)) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a file named at run time
    return { default: require(file) as unknown };
  }
  try {
    return (await import(pathToFileURL(file).href)) as Namespace;
  } catch (err) {
    if ((err as { code?: string }).code === "ERR_UNKNOWN_FILE_EXTENSION")
      throw new Error("a TypeScript service needs tsx in the project (npm install --save-dev tsx), or compile it to JavaScript");
    throw err;
  }
}

/** Loads every file of `config.userServices`, in order; the first that fails stops start-up, named. */
export async function loadUserServices(config: Config, cwd: string = process.cwd()): Promise<UserService[]> {
  const out: UserService[] = [];
  for (const file of config.userServices.files) {
    const shown = path.relative(cwd, file) || file;
    if (!fs.existsSync(file)) throw new ConfigError(VARIABLE, `service file ${shown} does not exist`);
    let ns: Namespace;
    try {
      ns = await importFile(file, cwd);
    } catch (err) {
      throw new ConfigError(VARIABLE, `service file ${shown} failed to load: ${messageOf(err)}`);
    }
    const service = serviceOf(ns);
    const isSchema = service !== null && typeof service === "object" && typeof (service as { name?: unknown }).name === "string";
    if (!isSchema && typeof service !== "function") {
      throw new ConfigError(
        VARIABLE,
        `service file ${shown} exports no Moleculer service: export a schema with a name (module.exports = { name, actions }), a function of the broker returning one, or a Service class`,
      );
    }
    out.push({ file, service: service as ServiceExport });
  }
  return out;
}

/**
 * Creates the loaded services on `broker`, as `broker.loadService` would. A schema's `name` clashing with a
 * Clawfleet role's service would shadow it: refused.
 */
export function createUserServices(broker: ServiceBroker, services: readonly UserService[], reserved: ReadonlySet<string>, cwd = process.cwd()): void {
  for (const { file, service } of services) {
    const shown = path.relative(cwd, file) || file;
    try {
      const created = createOne(broker, service);
      if (reserved.has(created.name)) {
        throw new Error(`its name "${created.name}" is one of Clawfleet's own services (${[...reserved].join(", ")}); rename it`);
      }
    } catch (err) {
      throw new ConfigError(VARIABLE, `service file ${shown}: ${messageOf(err)}`);
    }
  }
}

function createOne(broker: ServiceBroker, service: ServiceExport): { name: string } {
  if (typeof service !== "function") return broker.createService(service);
  const ServiceClass = broker.ServiceFactory as unknown as abstract new (...args: never[]) => unknown;
  if (service.prototype instanceof ServiceClass) {
    const created = new (service as new (b: ServiceBroker) => { name: string; _start?: unknown })(broker);
    return created;
  }
  const made = (service as (b: ServiceBroker) => unknown)(broker);
  if (made instanceof ServiceClass) return made as { name: string };
  if (made === null || typeof made !== "object" || typeof (made as { name?: unknown }).name !== "string")
    throw new Error("its function returned no service schema (an object with a name)");
  return broker.createService(made as ServiceSchema);
}
