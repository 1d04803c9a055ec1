/**
 * packaging - the Dockerfile, read with a Dockerfile parser (dockerfile-ast): pinned bases, the
 * stage layout, the runtime user, the health check, what gets copied, and role stages that add
 * nothing but metadata to the shared base.
 */
import fs from "node:fs";
import path from "node:path";
import { DockerfileParser, type Instruction } from "dockerfile-ast";
import { validate } from "dockerfile-utils";
import { describe, expect, it } from "vitest";
import { parseRoles } from "../../src/config";

const ROOT = path.resolve(__dirname, "..", "..");
const read = (f: string) => fs.readFileSync(path.join(ROOT, f), "utf8");
const dockerfile = DockerfileParser.parse(read("Dockerfile"));
const ROLE_TARGETS = ["planner", "executor", "rate-gateway", "api", "checkpoint", "metrics", "tools"] as const;

interface Stage {
  name: string;
  image: string;
  instructions: Instruction[];
}

const stages: Stage[] = [];
for (const ins of dockerfile.getInstructions()) {
  if (ins.getKeyword() === "FROM") {
    const from = dockerfile.getFROMs().find((f) => f.getRange().start.line === ins.getRange().start.line);
    stages.push({ name: from?.getBuildStage() ?? "", image: from?.getImage() ?? "", instructions: [] });
  } else {
    stages.at(-1)?.instructions.push(ins);
  }
}
const stage = (name: string): Stage => {
  const s = stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
};
const text = (i: Instruction) => i.getArgumentsContent() ?? "";
const of = (s: Stage, kw: string) => s.instructions.filter((i) => i.getKeyword() === kw);
const copyFlag = (i: Instruction, flag: string) =>
  (i as unknown as { getFlags(): Array<{ getName(): string; getValue(): string | null }> }).getFlags().find((f) => f.getName() === flag)?.getValue();

describe("packaging - Dockerfile", () => {
  it("has no errors or warnings from dockerfile-utils' validator (syntax, flags, instructions)", () => {
    const problems = validate(read("Dockerfile")).map((d) => `line ${d.range.start.line + 1}: ${typeof d.message === "string" ? d.message : d.message.value}`);
    expect(problems).toEqual([]);
  });

  it("pins every external base image by digest through required NODE_VERSION / NODE_DIGEST build args", () => {
    const stageNames = new Set(stages.map((s) => s.name));
    const external = stages.filter((s) => !stageNames.has(s.image));
    expect(external.length).toBeGreaterThanOrEqual(3);
    for (const s of external) expect(s.image, `FROM of stage ${s.name}`).toBe("node:${NODE_VERSION}-bookworm-slim@${NODE_DIGEST}");
    const initial = Object.fromEntries(dockerfile.getInitialARGs().map((a) => [a.getProperty()?.getName(), a.getProperty()?.getValue()]));
    // No default: a build without the digest has an invalid FROM and fails, never falls back to a tag.
    expect(initial).toHaveProperty("NODE_VERSION", null);
    expect(initial).toHaveProperty("NODE_DIGEST", null);
    expect(read("Dockerfile")).toMatch(/^# .*pinned by digest/m);
  });

  it("checks the image's Node against the NODE_VERSION arg and .nvmrc", () => {
    const builder = stage("builder");
    expect(of(builder, "COPY").some((c) => text(c).split(/\s+/).includes(".nvmrc"))).toBe(true);
    const runs = of(builder, "RUN").map(text).join("\n");
    expect(runs).toContain('test "$(node -v)" = "v$NODE_VERSION"');
    expect(runs).toContain('test "$(cat .nvmrc)" = "$NODE_VERSION"');
    expect(of(stage("base"), "RUN").map(text).join("\n")).toContain('test "$(node -v)" = "v$NODE_VERSION"');
  });

  it("is multi-stage: builder compiles, prod-deps installs without dev and optional deps, base only copies", () => {
    expect(stages.map((s) => s.name)).toEqual(expect.arrayContaining(["builder", "prod-deps", "base", ...ROLE_TARGETS]));
    expect(of(stage("builder"), "RUN").map(text).join("\n")).toMatch(/npm ci\b/);
    expect(of(stage("builder"), "RUN").map(text).join("\n")).toContain("tsc -p tsconfig.build.json");
    expect(of(stage("prod-deps"), "RUN").map(text).join("\n")).toMatch(/npm ci --omit=dev --omit=optional/);
    const base = stage("base");
    const copies = of(base, "COPY");
    expect(copies.some((c) => copyFlag(c, "from") === "prod-deps" && text(c).includes("node_modules"))).toBe(true);
    expect(copies.some((c) => copyFlag(c, "from") === "builder" && text(c).includes("dist"))).toBe(true);
    const baseRuns = of(base, "RUN").map(text).join("\n");
    // No compiler, no install, and npm itself (with its cache) removed from the runtime image.
    expect(baseRuns).not.toMatch(/npm (ci|install)|tsc|apt-get/);
    expect(baseRuns).toMatch(/rm -rf[^\n]*\/usr\/local\/lib\/node_modules\/npm/);
    expect(baseRuns).toContain("/root/.npm");
  });

  it("runs as a non-root numeric user, with the compiled CLI as entry point", () => {
    const users = of(stage("base"), "USER").map(text);
    expect(users).toHaveLength(1);
    expect(users[0]).toMatch(/^[1-9]\d*(:[1-9]\d*)?$/);
    const entry = of(stage("base"), "ENTRYPOINT").map(text);
    expect(entry).toEqual(['["node", "bin/clawfleet.js"]']);
  });

  it("has a HEALTHCHECK on /health/live done with node (slim images have no curl)", () => {
    const hc = of(stage("base"), "HEALTHCHECK").map(text);
    expect(hc).toHaveLength(1);
    expect(hc[0]).toContain("/health/live");
    expect(hc[0]).toMatch(/CMD \["node", "-e"/);
    expect(hc[0]).not.toMatch(/curl|wget/);
  });

  it("never copies .env files, secrets or the whole context, and never ADDs", () => {
    expect(dockerfile.getInstructions().filter((i) => i.getKeyword() === "ADD")).toHaveLength(0);
    for (const c of dockerfile.getInstructions().filter((i) => i.getKeyword() === "COPY")) {
      const parts = text(c)
        .split(/\s+/)
        .filter((p) => !p.startsWith("--"));
      const sources = parts.slice(0, -1);
      for (const src of sources) {
        expect(src, `COPY ${text(c)}`).not.toMatch(/(^|\/)\.env|secret|\.pem$|\.key$|id_rsa|\.npmrc/i);
        expect(src, `COPY ${text(c)}: copy named paths, not the context`).not.toMatch(/^\.\/?$|^\*$/);
      }
    }
  });

  it("copies every folder tsc builds and the files compiled code reads at run time", () => {
    const build = JSON.parse(read("tsconfig.build.json")) as { include: string[] };
    const builderCopies = of(stage("builder"), "COPY").flatMap((c) => text(c).split(/\s+/));
    for (const inc of build.include) {
      const p = path.join(ROOT, inc);
      const hasFiles = fs.existsSync(p) && (fs.statSync(p).isFile() || fs.readdirSync(p).length > 0);
      if (hasFiles) expect(builderCopies, `tsconfig.build.json includes ${inc}`).toContain(inc);
    }
    const base = of(stage("base"), "COPY").map(text);
    for (const needed of ["package.json", "bin"]) expect(base.some((c) => c.split(/\s+/).includes(needed))).toBe(true);
    expect(base.some((c) => c.includes("/runtime-assets/src"))).toBe(true);
    // The default project: the examples, compiled in the builder with their agent files, migrations
    // and MCP server beside them, and the variables that name them.
    expect(builderCopies).toContain("examples");
    const builderRuns = of(stage("builder"), "RUN").map(text).join("\n");
    expect(builderRuns).toContain("tsc -p examples/tsconfig.json");
    for (const kept of ["*/prompts/*.md", "*.sql", "*.mjs"]) expect(builderRuns).toContain(`'${kept}'`);
    expect(of(stage("base"), "COPY").some((c) => copyFlag(c, "from") === "builder" && /\/examples\s+\.\/examples$/.test(text(c)))).toBe(true);
    const env = of(stage("base"), "ENV").map(text).join(" ");
    expect(env).toContain("CLAWFLEET_PROMPTS_DIR=/app/examples/*/prompts");
    expect(env).toContain("CLAWFLEET_USER_SERVICES=/app/examples/*/services/*.service.js");
    expect(env).toContain("CLAWFLEET_SIM_POLICIES=/app/examples/order-router/sim/policies.js");
    const collect = of(stage("builder"), "RUN").map(text).join("\n");
    expect(collect).toContain("-name '*.sql'");
    expect(collect).toContain("-name '*.lua'");
  });

  it("ships every non-TypeScript file under src/ (the image collects the .sql, the .lua and the dashboard's assets)", () => {
    const assets = path.join("dashboard", "assets") + path.sep;
    const others = fs
      .readdirSync(path.join(ROOT, "src"), { recursive: true, encoding: "utf8" })
      .filter((f) => fs.statSync(path.join(ROOT, "src", f)).isFile() && !/\.(ts|sql|lua)$/.test(f) && !f.startsWith(assets));
    expect(others, "files compiled code may read at run time but the image would not ship: extend the builder's find").toEqual([]);
    expect(of(stage("builder"), "RUN").map(text).join("\n")).toContain("-path 'src/dashboard/assets/*'");
  });

  it("gives each role a target that is the shared base plus ENV and LABEL only", () => {
    for (const role of ROLE_TARGETS) {
      const s = stage(role);
      expect(s.image, role).toBe("base");
      expect(new Set(s.instructions.map((i) => i.getKeyword())), role).toEqual(new Set(["ENV", "LABEL"]));
      const env = of(s, "ENV").map(text).join(" ");
      const services = /SERVICES=(\S+)/.exec(env)?.[1];
      expect(services, role).toBeDefined();
      expect(() => parseRoles(services)).not.toThrow();
      expect(parseRoles(services), role).toEqual(role === "api" ? ["api", "intake"] : [role]);
      expect(of(s, "LABEL").map(text).join(" ")).toContain(`io.clawfleet.role="${role}"`);
    }
  });

  it("sends an allow-listed build context that excludes .env*, secrets, node_modules, .git, tests and bench", () => {
    const lines = read(".dockerignore")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    expect(lines[0]).toBe("*");
    for (const p of ["**/.env", "**/.env.*", "**/secrets", "**/node_modules", "**/.git", "test/", "bench/"]) expect(lines).toContain(p);
    for (const p of ["!mixins/", "!examples/"]) expect(lines).toContain(p);
    for (const p of ["!test/", "!bench/", "!testkit/"]) expect(lines).not.toContain(p);
    expect(lines).not.toContain("!test/");
    expect(lines).not.toContain("!.env");
  });

  it("builds offline: no # syntax= frontend to pull, and a proxy's CA only as a build secret of the npm ci steps", () => {
    const raw = read("Dockerfile");
    // A `# syntax=` frontend image is fetched from a registry by tag at every build; the built-in
    // frontend handles everything the Dockerfile uses (.ci/images.sh builds it with no registry).
    expect(raw).not.toMatch(/^#\s*syntax\s*=/im);
    const lines = raw.split("\n");
    const source = (i: Instruction) => lines.slice(i.getRange().start.line, i.getRange().end.line + 1).join("\n");
    const installs = dockerfile.getInstructions().filter((i) => i.getKeyword() === "RUN" && /npm ci\b/.test(source(i)));
    expect(installs.length).toBeGreaterThanOrEqual(2);
    for (const i of installs) {
      expect(source(i), "npm ci").toContain("--mount=type=secret,id=build_ca");
      expect(source(i), "npm ci").toContain("NODE_EXTRA_CA_CERTS=/run/secrets/build_ca");
    }
    for (const c of dockerfile.getInstructions().filter((i) => i.getKeyword() === "COPY")) expect(text(c)).not.toMatch(/\.(crt|pem)\b|ca-certificates/);
  });

  it("removes Debian's apt and dpkg from the runtime base, keeping dpkg's database for scanners", () => {
    const baseRuns = of(stage("base"), "RUN").map(text).join("\n");
    expect(baseRuns).toContain("/usr/bin/apt*");
    expect(baseRuns).toContain("/usr/bin/dpkg*");
    expect(baseRuns).not.toContain("/var/lib/dpkg");
  });

  it("leaves PGlite out of production installs: it is an optional dependency", () => {
    const pkg = JSON.parse(read("package.json")) as Record<string, Record<string, string> | undefined>;
    expect(pkg.dependencies?.["@electric-sql/pglite"]).toBeUndefined();
    expect(pkg.optionalDependencies?.["@electric-sql/pglite"]).toBeDefined();
    const lock = JSON.parse(read("package-lock.json")) as { packages: Record<string, { optional?: boolean }> };
    expect(lock.packages["node_modules/@electric-sql/pglite"]?.optional).toBe(true);
  });
});
