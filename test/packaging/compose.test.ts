/**
 * packaging - compose.dev.yml and compose.prod-like.yml: valid for docker-compose, infrastructure
 * as named services with health checks that the roles wait for, production limits and hardening
 * in the prod-like file, source and tsx in the dev file.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { requireTool, run } from "./tools";

const ROOT = path.resolve(__dirname, "..", "..");
const INFRA = ["nats", "redis", "postgres"] as const;
const OBSERVABILITY = ["jaeger", "prometheus", "grafana"] as const;

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
  deploy?: { resources?: { limits?: { memory?: string; cpus?: string } } };
  profiles?: string[];
  read_only?: boolean;
  user?: string;
  tmpfs?: string[];
  volumes?: string[];
  logging?: { driver?: string };
  cap_drop?: string[];
}

function load(file: string): Record<string, Service> {
  const doc = YAML.parse(fs.readFileSync(path.join(ROOT, file), "utf8"), { merge: true }) as { services: Record<string, Service> };
  return doc.services;
}

const dev = load("compose.dev.yml");
const prod = load("compose.prod-like.yml");
/** Services that run Clawfleet roles (`clawfleet start`), as opposed to infrastructure, sim and tooling. */
const roles = (services: Record<string, Service>) =>
  Object.entries(services).filter(([name, s]) => ![...INFRA, ...OBSERVABILITY, "sim", "deps"].includes(name as never) && s.profiles === undefined);

describe.each([
  ["compose.dev.yml", dev],
  ["compose.prod-like.yml", prod],
])("packaging - %s", (_file, services) => {
  it("runs NATS with JetStream, Redis and Postgres as named services with health checks", () => {
    for (const name of INFRA) {
      expect(services[name], name).toBeDefined();
      expect(services[name]?.healthcheck?.test?.length, `${name} healthcheck`).toBeGreaterThan(0);
    }
    expect(services.nats?.command).toContain("-js");
    expect(services.nats?.healthcheck?.test?.join(" ")).toContain("js-enabled-only=true");
  });

  it("starts every role only once NATS, Redis and Postgres are healthy", () => {
    const r = roles(services);
    expect(r.length).toBeGreaterThanOrEqual(2);
    for (const [name, s] of r) {
      for (const dep of INFRA) expect(s.depends_on?.[dep]?.condition, `${name} -> ${dep}`).toBe("service_healthy");
    }
  });

  it("has a sim service for load tests and keeps Jaeger, Prometheus and Grafana under the observability profile", () => {
    expect(services.sim?.command).toContain("sim");
    for (const name of OBSERVABILITY) expect(services[name]?.profiles, name).toEqual(["observability"]);
    for (const [name, s] of Object.entries(services)) if (!(OBSERVABILITY as readonly string[]).includes(name)) expect(s.profiles, name).toBeUndefined();
  });
});

describe("packaging - compose.prod-like.yml specifics", () => {
  it("runs images only, read-only, as the numeric non-root user, with 512 MB and CPU limits and JSON logs", () => {
    for (const [name, s] of roles(prod)) {
      expect(s.image, name).toMatch(/^\$\{CLAWFLEET_REGISTRY:-clawfleet\}\/[a-z-]+:\$\{CLAWFLEET_TAG:-latest\}$/);
      expect(s.build, name).toBeUndefined();
      expect(s.volumes, `${name}: no source or data mounts`).toBeUndefined();
      expect(s.read_only, name).toBe(true);
      expect(s.tmpfs?.some((t) => t.startsWith("/tmp")), name).toBe(true);
      expect(s.user, name).toMatch(/^[1-9]\d*:[1-9]\d*$/);
      expect(s.cap_drop, name).toEqual(["ALL"]);
      expect(s.deploy?.resources?.limits?.memory, name).toBe("512M");
      expect(Number(s.deploy?.resources?.limits?.cpus), name).toBeGreaterThan(0);
      expect(s.environment?.CLAWFLEET_LOG_FORMAT, name).toBe("json");
      expect(s.environment?.NODE_OPTIONS, name).toContain("--max-old-space-size=384");
      expect(s.logging?.driver, name).toBe("json-file");
    }
  });

  it("starts the other roles after the checkpoint role (which migrates) is ready", () => {
    expect(prod.checkpoint?.healthcheck?.test?.join(" ")).toContain("/health/ready");
    for (const [name, s] of roles(prod)) if (name !== "checkpoint") expect(s.depends_on?.checkpoint?.condition, name).toBe("service_healthy");
  });

  it("takes the database password from the environment, never from the file", () => {
    const raw = fs.readFileSync(path.join(ROOT, "compose.prod-like.yml"), "utf8");
    expect(raw).toContain("${POSTGRES_PASSWORD:?");
    expect(prod.postgres?.environment?.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?/);
  });
});

describe("packaging - compose.dev.yml specifics", () => {
  it("mounts the source, runs tsx with debug logs, and sets no limits", () => {
    const nvmrc = fs.readFileSync(path.join(ROOT, ".nvmrc"), "utf8").trim();
    for (const [name, s] of roles(dev)) {
      expect(s.volumes, name).toContain(".:/app");
      expect(s.command?.join(" "), name).toMatch(/^npx tsx /);
      expect(s.environment?.LOG_LEVEL, name).toBe("debug");
      expect(s.deploy, name).toBeUndefined();
      expect(s.image, name).toBe(`node:\${NODE_VERSION:-${nvmrc}}-bookworm-slim`);
      expect(s.depends_on?.deps?.condition, name).toBe("service_completed_successfully");
    }
  });
});

describe("packaging - compose.offline.yml (the prod-like stack where no image registry is reachable)", () => {
  const offline = load("compose.offline.yml");

  it("only swaps NATS', Redis' and Postgres' images for the stand-ins built from Debian's packages", () => {
    expect(Object.keys(offline).sort()).toEqual(["nats", "postgres", "redis"]);
    for (const [name, s] of Object.entries(offline)) {
      expect(Object.keys(s), name).toEqual(["image"]);
      expect(s.image, name).toMatch(new RegExp(`^\\$\\{CLAWFLEET_OFFLINE_IMAGES:-clawfleet-offline\\}/${name}:`));
    }
    const infra = fs.readFileSync(path.join(ROOT, "deploy", "offline-images", "infra.Dockerfile"), "utf8");
    for (const name of INFRA) expect(infra, name).toMatch(new RegExp(`^FROM \\S+ AS ${name}$`, "m"));
  });
});

const hasCompose = requireTool("docker-compose", "the docker-compose validation of compose.dev.yml and compose.prod-like.yml is");

describe.skipIf(!hasCompose)("packaging - docker-compose config", () => {
  const env = { ...process.env, POSTGRES_PASSWORD: "test-only-not-a-secret" };

  it("validates compose.dev.yml, with and without the observability profile", () => {
    run("docker-compose", ["-f", "compose.dev.yml", "config", "-q"], { cwd: ROOT, env });
    const services = run("docker-compose", ["-f", "compose.dev.yml", "--profile", "observability", "config", "--services"], { cwd: ROOT, env });
    expect(services.split("\n")).toEqual(expect.arrayContaining(["jaeger", "prometheus", "grafana", "sim"]));
  });

  it("validates compose.prod-like.yml, with and without the observability profile", () => {
    run("docker-compose", ["-f", "compose.prod-like.yml", "config", "-q"], { cwd: ROOT, env });
    const services = run("docker-compose", ["-f", "compose.prod-like.yml", "--profile", "observability", "config", "--services"], { cwd: ROOT, env });
    expect(services.split("\n")).toEqual(expect.arrayContaining(["jaeger", "prometheus", "grafana", "sim", "planner"]));
  });

  it("merges compose.offline.yml over compose.prod-like.yml keeping health checks, conditions and limits", () => {
    const merged = YAML.parse(run("docker-compose", ["-f", "compose.prod-like.yml", "-f", "compose.offline.yml", "config"], { cwd: ROOT, env })) as {
      services: Record<string, Service>;
    };
    for (const name of INFRA) {
      expect(merged.services[name]?.image, name).toMatch(new RegExp(`^clawfleet-offline/${name}:`));
      expect(merged.services[name]?.healthcheck?.test, name).toEqual(prod[name]?.healthcheck?.test);
    }
    expect(merged.services.nats?.command).toEqual(prod.nats?.command);
    expect(merged.services.planner?.depends_on?.checkpoint?.condition).toBe("service_healthy");
    expect(merged.services.planner?.deploy?.resources?.limits?.memory).toMatch(/^512M/);
  });

  it("refuses compose.prod-like.yml without POSTGRES_PASSWORD", () => {
    const { POSTGRES_PASSWORD: _omit, ...without } = env;
    expect(() => run("docker-compose", ["-f", "compose.prod-like.yml", "config", "-q"], { cwd: ROOT, env: without })).toThrow(/POSTGRES_PASSWORD/);
  });
});
