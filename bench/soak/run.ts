/**
 * Prod-like soak without containers: every role in its own OS process, run the way
 * the image runs it, against the real local NATS, Redis and Postgres and a separate
 * `clawfleet sim` process; a steady stream of simulated tasks; each role's RSS
 * sampled from /proc/<pid>/status.
 *
 * "The way the image runs it":
 * - compiled `dist/` (from `npm run build`) and production dependencies only
 *   (`npm ci --omit=dev --omit=optional`, so no PGlite), in a copy of the app;
 * - that copy is not writable by the role processes: as root the roles run as
 *   `nobody` (uid 65534) over a root-owned, chmod a-w tree, which is what a
 *   read-only root filesystem and a non-root user amount to; only their own TMPDIR
 *   is writable;
 * - `node --max-old-space-size=384` (sized for a 512 MB limit), JSON logs,
 *   NODE_ENV=production.
 *
 * Isolation: a fresh database, a unique namespace (NATS subjects, Redis keys and
 * streams), all removed afterwards; traffic goes to 127.0.0.1 only, bounded in
 * count (--tasks) and time (a hard deadline).
 *
 *   npx tsx bench/soak/run.ts --tasks 10000 --rate 14 [--json out.json] [--md out.md]
 *
 * Report: RSS over time per role, the steady-state maximum (after the first
 * --warmup-tasks finished), and the trend after warm-up as the least-squares slope
 * of RSS against finished tasks, in MB per 10,000 tasks.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import pg from "pg";

const ROOT = path.resolve(__dirname, "..", "..");
const { values: args } = parseArgs({
  options: {
    tasks: { type: "string", default: "10000" },
    rate: { type: "string", default: "14" },
    "sample-ms": { type: "string", default: "5000" },
    "warmup-tasks": { type: "string", default: "2000" },
    planners: { type: "string", default: "2" },
    "planner-slots": { type: "string", default: "8" },
    "sim-latency-ms": { type: "string", default: "20" },
    "heap-mb": { type: "string", default: "384" },
    "no-build": { type: "boolean", default: false },
    json: { type: "string" },
    md: { type: "string" },
    keep: { type: "boolean", default: false },
  },
});
const TASKS = Number(args.tasks);
const RATE = Number(args.rate);
const SAMPLE_MS = Number(args["sample-ms"]);
const WARMUP = Number(args["warmup-tasks"]);
const HEAP_MB = Number(args["heap-mb"]);
const PG_ADMIN = process.env.CLAWFLEET_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_URL = process.env.CLAWFLEET_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const NATS_URL = process.env.CLAWFLEET_TEST_NATS_URL ?? "nats://127.0.0.1:4222";
const NOBODY = 65534;

const log = (msg: string) => process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

/**
 * Copies the runtime tree an image holds: dist, bin, package files, src/**\/*.lua and *.sql, and the demo
 * project compiled to JavaScript under examples/ (as the Dockerfile's builder stage compiles it).
 */
function prepareApp(app: string): void {
  fs.mkdirSync(app, { recursive: true });
  for (const p of ["dist", "bin"]) fs.cpSync(path.join(ROOT, p), path.join(app, p), { recursive: true });
  compileExamples(app);
  for (const f of ["package.json", "package-lock.json"]) fs.copyFileSync(path.join(ROOT, f), path.join(app, f));
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (/\.(lua|sql)$/.test(e.name)) {
        const dest = path.join(app, path.relative(ROOT, full));
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        fs.copyFileSync(full, dest);
      }
    }
  };
  walk(path.join(ROOT, "src"));
  log("installing production dependencies (npm ci --omit=dev --omit=optional) into the copy");
  execFileSync("npm", ["ci", "--omit=dev", "--omit=optional", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: app,
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (fs.existsSync(path.join(app, "node_modules", "@electric-sql", "pglite"))) throw new Error("PGlite was installed: --omit=optional did not apply");
  execFileSync("chmod", ["-R", "a-w", app]);
}

/** The examples as JavaScript (they import `clawfleet` by name: in the copy it resolves by self-reference), with their prompts, SQL and .mjs files. */
function compileExamples(app: string): void {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-examples-"));
  try {
    execFileSync(
      path.join(ROOT, "node_modules", ".bin", "tsc"),
      ["-p", "examples/tsconfig.json", "--outDir", out, "--rootDir", ".", "--noEmit", "false", "--module", "node16", "--moduleResolution", "node16", "--declaration", "false", "--sourceMap", "false"],
      { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] },
    );
    fs.cpSync(path.join(out, "examples"), path.join(app, "examples"), { recursive: true });
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (/\.(md|sql|mjs)$/.test(e.name) && (e.name.endsWith(".md") ? path.basename(dir) === "prompts" : true)) {
        const dest = path.join(app, path.relative(ROOT, full));
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        fs.copyFileSync(full, dest);
      }
    }
  };
  walk(path.join(ROOT, "examples"));
}

interface Proc {
  role: string;
  port: number;
  child: ChildProcess;
  exited: Promise<number | null>;
}

function startProcess(role: string, argv: string[], env: Record<string, string>, app: string, logs: string, asUser: boolean, port: number): Proc {
  const out = fs.openSync(path.join(logs, `${role}.log`), "a");
  const child = spawn(process.execPath, argv, {
    cwd: app,
    env,
    stdio: ["ignore", out, out],
    ...(asUser ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  fs.closeSync(out);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { role, port, child, exited };
}

async function waitReady(p: Proc, logs: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let done = false;
  void p.exited.then(() => (done = true));
  while (Date.now() < deadline) {
    if (done) throw new Error(`${p.role} exited during start-up; see ${path.join(logs, `${p.role}.log`)}`);
    const ok = await fetch(`http://127.0.0.1:${p.port}/health/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await sleep(250);
  }
  throw new Error(`${p.role} not ready after ${timeoutMs} ms; see ${path.join(logs, `${p.role}.log`)}`);
}

function rssMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m?.[1] !== undefined ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

interface Sample {
  t_s: number;
  submitted: number;
  finished: number;
  rss_mb: Record<string, number>;
}

/** Least-squares slope of y on x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += ((xs[i] ?? 0) - mx) * ((ys[i] ?? 0) - my);
    den += ((xs[i] ?? 0) - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  if (!Number.isInteger(TASKS) || TASKS < 1 || !(RATE > 0)) throw new Error("--tasks must be a positive integer and --rate positive");
  if (!args["no-build"]) {
    log("npm run build");
    execFileSync("npm", ["run", "build", "--silent"], { cwd: ROOT, stdio: "inherit" });
  }
  const asUser = typeof process.getuid === "function" && process.getuid() === 0;
  const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-soak-"));
  fs.chmodSync(tmpRoot, 0o755);
  const app = path.join(tmpRoot, "app");
  const logs = path.join(tmpRoot, "logs");
  const tmp = path.join(tmpRoot, "tmp");
  fs.mkdirSync(logs);
  fs.mkdirSync(tmp);
  if (asUser) {
    fs.chownSync(logs, NOBODY, NOBODY);
    fs.chownSync(tmp, NOBODY, NOBODY);
  }
  const id = randomUUID().replace(/-/g, "").slice(0, 12);
  const namespace = `soak${id}`;
  const dbName = `clawfleet_soak_${id}`;
  const procs: Proc[] = [];
  const admin = new pg.Client({ connectionString: PG_ADMIN });
  await admin.connect();
  let dbCreated = false;
  let db: pg.Client | undefined;

  const cleanup = async () => {
    log("stopping processes (SIGTERM)");
    await Promise.all(
      procs.map(async (p) => {
        if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGTERM");
        const t = setTimeout(() => p.child.kill("SIGKILL"), 35_000);
        await p.exited;
        clearTimeout(t);
      }),
    );
    await db?.end().catch(() => undefined);
    if (dbCreated) await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch((e: unknown) => log(`drop database failed: ${String(e)}`));
    await admin.end().catch(() => undefined);
    const redis = new Redis(REDIS_URL);
    try {
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${namespace}*`, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== "0");
    } finally {
      redis.disconnect();
    }
    if (!args.keep) {
      execFileSync("chmod", ["-R", "u+w", tmpRoot]);
      fs.rmSync(tmpRoot, { recursive: true, force: true });
    } else log(`kept ${tmpRoot}`);
  };

  try {
    prepareApp(app);
    await admin.query(`CREATE DATABASE ${dbName}`);
    dbCreated = true;
    const dbUrl = new URL(PG_ADMIN);
    dbUrl.pathname = `/${dbName}`;

    const baseEnv: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: tmp,
      TMPDIR: tmp,
      NODE_ENV: "production",
      LOG_LEVEL: "info",
      CLAWFLEET_LOG_FORMAT: "json",
      // The image's defaults: the compiled demo is the project (Dockerfile, base stage).
      CLAWFLEET_PROMPTS_DIR: path.join(app, "examples/*/prompts"),
      CLAWFLEET_USER_SERVICES: path.join(app, "examples/*/services/*.service.js"),
      CLAWFLEET_SIM_POLICIES: path.join(app, "examples/order-router/sim/policies.js"),
    };
    const simPort = await freePort();
    const sim = startProcess(
      "sim",
      ["bin/clawfleet.js", "sim", "--port", String(simPort), "--latency-ms", String(args["sim-latency-ms"])],
      baseEnv,
      app,
      logs,
      asUser,
      simPort,
    );
    procs.push(sim);
    const roleEnv = (services: string, port: number): Record<string, string> => ({
      ...baseEnv,
      PORT: String(port),
      TRANSPORTER: NATS_URL,
      REDIS_URL,
      DATABASE_URL: dbUrl.toString(),
      SERVICES: services,
      CLAWFLEET_NAMESPACE: namespace,
      CLAWFLEET_AUTH: "off",
      ANTHROPIC_BASE_URL: `http://127.0.0.1:${simPort}`,
      CLAWFLEET_PLANNER_SLOTS: String(args["planner-slots"]),
    });
    const startRole = async (role: string, services: string) => {
      const port = await freePort();
      const p = startProcess(role, [`--max-old-space-size=${HEAP_MB}`, "bin/clawfleet.js", "start"], roleEnv(services, port), app, logs, asUser, port);
      procs.push(p);
      return p;
    };
    // The checkpoint role migrates the fresh database; the others find the schema.
    const checkpoint = await startRole("checkpoint", "checkpoint");
    await waitReady(checkpoint, logs);
    const others = await Promise.all([
      startRole("rate-gateway", "rate-gateway"),
      startRole("executor", "executor"),
      startRole("tools", "tools"),
      ...Array.from({ length: Number(args.planners) }, (_, i) => startRole(`planner-${i + 1}`, "planner")),
      startRole("api", "api,intake"),
      startRole("metrics", "metrics"),
    ]);
    await Promise.all(others.map((p) => waitReady(p, logs)));
    const api = others.find((p) => p.role === "api");
    if (!api) throw new Error("no api process");
    log(`all roles ready (${procs.map((p) => `${p.role}:${p.child.pid}`).join(" ")}); running as ${asUser ? "uid 65534 over a read-only copy" : "this user over a chmod a-w copy"}`);

    db = new pg.Client({ connectionString: dbUrl.toString() });
    await db.connect();
    const dbc = db;
    const finishedCount = async () =>
      Number((await dbc.query<{ n: string }>("SELECT count(*) AS n FROM tasks WHERE status IN ('succeeded','failed','cancelled')")).rows[0]?.n ?? 0);

    const started = Date.now();
    const deadline = started + (TASKS / RATE) * 1000 * 3 + 300_000;
    const samples: Sample[] = [];
    let submitted = 0;
    let rejected = 0;
    let finished = 0;
    const sample = async () => {
      finished = await finishedCount();
      const rss: Record<string, number> = {};
      for (const p of procs) {
        const mb = rssMb(p.child.pid);
        if (mb !== undefined) rss[p.role] = Math.round(mb * 10) / 10;
      }
      samples.push({ t_s: Math.round((Date.now() - started) / 1000), submitted, finished, rss_mb: rss });
    };
    await sample();
    const sampler = setInterval(() => void sample(), SAMPLE_MS);
    let lastReport = 0;
    const progress = setInterval(() => {
      if (finished - lastReport >= 1000 || submitted === TASKS) {
        log(`submitted ${submitted}/${TASKS}, finished ${finished}, rejected ${rejected}`);
        lastReport = finished;
      }
    }, 10_000);

    // Steady rate: submission i goes out at started + i / RATE, whatever the previous answers took.
    const inFlight = new Set<Promise<void>>();
    const base = `http://127.0.0.1:${api.port}`;
    for (let i = 0; i < TASKS && Date.now() < deadline; i++) {
      const due = started + (i / RATE) * 1000;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      const order = `ORD-${1000 + (i % 1000)}`;
      const req = fetch(`${base}/v1/tasks`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ agent: "order-router", input: { order_id: order }, metadata: { soak: namespace, n: i } }),
      }).then(
        async (r) => {
          await r.arrayBuffer();
          if (r.status === 202) submitted++;
          else rejected++;
        },
        () => {
          rejected++;
        },
      );
      const tracked = req.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      if (inFlight.size > 200) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    const submitDoneS = (Date.now() - started) / 1000;
    while (finished < submitted && Date.now() < deadline) await sleep(1000);
    await sleep(SAMPLE_MS);
    clearInterval(sampler);
    clearInterval(progress);
    await sample();
    const elapsedS = (Date.now() - started) / 1000;
    const byStatus = (await dbc.query<{ status: string; n: string }>("SELECT status, count(*) AS n FROM tasks GROUP BY status ORDER BY status")).rows;
    const exitedEarly = procs.filter((p) => p.child.exitCode !== null || p.child.signalCode !== null).map((p) => p.role);

    // --- report ---------------------------------------------------------------------------
    const roles = procs.map((p) => p.role);
    const steady = samples.filter((s) => s.finished >= Math.min(WARMUP, submitted));
    const summary = roles.map((role) => {
      const all = samples.map((s) => s.rss_mb[role]).filter((v): v is number => v !== undefined);
      const st = steady.filter((s) => s.rss_mb[role] !== undefined);
      const ys = st.map((s) => s.rss_mb[role] ?? 0);
      const perTask = slope(
        st.map((s) => s.finished),
        ys,
      );
      // The second half alone: a heap that grows to its working size and stops shows a slope after
      // warm-up but none here; a leak shows in both.
      const late = st.filter((s) => s.finished >= submitted / 2);
      const perTaskLate = slope(
        late.map((s) => s.finished),
        late.map((s) => s.rss_mb[role] ?? 0),
      );
      return {
        role,
        start_mb: all[0] ?? 0,
        max_mb: Math.max(...all),
        steady_max_mb: ys.length > 0 ? Math.max(...ys) : Number.NaN,
        steady_first_mb: ys[0] ?? Number.NaN,
        steady_last_mb: ys[ys.length - 1] ?? Number.NaN,
        trend_mb_per_10k_tasks: Math.round(perTask * 10_000 * 10) / 10,
        second_half_trend_mb_per_10k_tasks: Math.round(perTaskLate * 10_000 * 10) / 10,
      };
    });
    const result = {
      when: new Date().toISOString(),
      machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`,
      settings: {
        tasks: TASKS,
        rate_per_s: RATE,
        sample_ms: SAMPLE_MS,
        warmup_tasks: WARMUP,
        planners: Number(args.planners),
        planner_slots: Number(args["planner-slots"]),
        sim_latency_ms: Number(args["sim-latency-ms"]),
        heap_mb: HEAP_MB,
        user: asUser ? "uid 65534 (nobody), app tree root-owned and a-w" : "current user, app tree a-w",
      },
      submitted,
      rejected,
      by_status: Object.fromEntries(byStatus.map((r) => [r.status, Number(r.n)])),
      submit_s: Math.round(submitDoneS),
      elapsed_s: Math.round(elapsedS),
      throughput_tasks_per_s: Math.round((finished / elapsedS) * 10) / 10,
      exited_early: exitedEarly,
      summary,
      samples,
    };
    const md: string[] = [];
    md.push(
      `${result.machine}; ${TASKS} tasks at ${RATE}/s; ${result.submitted} accepted, ${rejected} rejected; ` +
        `final: ${JSON.stringify(result.by_status)}; submitted in ${result.submit_s} s, all finished in ${result.elapsed_s} s.`,
      "",
      `| role | RSS at start (MB) | max (MB) | steady-state max (MB) | steady first → last (MB) | trend after ${WARMUP} tasks (MB per 10,000 tasks) | trend over the second half |`,
      "|---|---:|---:|---:|---:|---:|---:|",
    );
    for (const s of summary) {
      md.push(`| ${s.role} | ${s.start_mb.toFixed(0)} | ${s.max_mb.toFixed(0)} | ${s.steady_max_mb.toFixed(0)} | ${s.steady_first_mb.toFixed(0)} → ${s.steady_last_mb.toFixed(0)} | ${s.trend_mb_per_10k_tasks.toFixed(1)} | ${s.second_half_trend_mb_per_10k_tasks.toFixed(1)} |`);
    }
    md.push("", "RSS over time (MB):", "", `| t (s) | finished | ${roles.join(" | ")} |`, `|---:|---:|${roles.map(() => "---:").join("|")}|`);
    const every = Math.max(1, Math.round(samples.length / 16));
    samples.forEach((s, i) => {
      if (i % every === 0 || i === samples.length - 1) md.push(`| ${s.t_s} | ${s.finished} | ${roles.map((r) => (s.rss_mb[r] ?? 0).toFixed(0)).join(" | ")} |`);
    });
    const text = md.join("\n");
    process.stdout.write(`${text}\n`);
    if (args.json) fs.writeFileSync(args.json, JSON.stringify(result, null, 2));
    if (args.md) fs.writeFileSync(args.md, `${text}\n`);
    if (exitedEarly.length > 0) {
      log(`processes exited during the run: ${exitedEarly.join(", ")}`);
      process.exitCode = 1;
    }
    if (finished < submitted) {
      log(`${submitted - finished} tasks did not finish before the deadline`);
      process.exitCode = 1;
    }
  } finally {
    await cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
