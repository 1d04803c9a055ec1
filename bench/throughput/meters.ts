/**
 * The instruments of the throughput and intake benchmarks, read from outside the
 * measured processes: Postgres commits of one database (pg_stat_database), the
 * Redis commands sent by given processes (MONITOR, attributed by the client's
 * TCP port, which /proc maps to its process), the server-wide INFO commandstats,
 * the Moleculer traffic counted by brokerCounter.cjs, CPU time from /proc, and
 * the load average to print beside every figure.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { createHash } from "node:crypto";
import { luaDir, readScripts } from "../../src/redis/scripts";
import { POSTGRES_ADMIN_URL, REDIS_TEST_URL } from "../../testkit/scratch";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** "load average 1.52 1.20 0.80 on 2 CPUs": printed with every figure, the machine is shared. */
export function loadLine(): string {
  return `load average ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")} on ${os.cpus().length} CPUs`;
}

/** Nearest rank, of sorted numbers. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/** Committed transactions of database `name` so far, as the statistics collector has them. */
export async function pgCommits(name: string): Promise<number> {
  const c = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await c.connect();
  try {
    const r = await c.query<{ n: string }>("SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = $1", [name]);
    return Number(r.rows[0]?.n ?? 0);
  } finally {
    await c.end();
  }
}

/**
 * Postgres flushes an idle backend's statistics up to 10 s late (PGSTAT_IDLE_INTERVAL):
 * a reading is taken once the count has held still for `stillMs` past that.
 */
export async function settledPgCommits(name: string, stillMs = 11_000): Promise<number> {
  await sleep(stillMs);
  return pgCommits(name);
}

/** The local TCP ports of `pid`'s connections to `remotePort` (its Redis clients), from /proc. */
export function clientPorts(pid: number, remotePort: number): number[] {
  const inodes = new Set<string>();
  try {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`, { encoding: "utf8" });
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m?.[1]) inodes.add(m[1]);
    }
  } catch {
    return [];
  }
  const ports: number[] = [];
  for (const table of ["tcp", "tcp6"]) {
    let text = "";
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      const [local, remote, inode] = [cols[1], cols[2], cols[9]];
      if (!local || !remote || !inode || !inodes.has(inode)) continue;
      if (parseInt(remote.split(":")[1] ?? "", 16) === remotePort) ports.push(parseInt(local.split(":")[1] ?? "", 16));
    }
  }
  return ports;
}

/** The project's Lua scripts (every `src/<area>/lua/`) by their SHA-1 (what EVALSHA names), so a count can say which script ran. */
export function scriptsBySha(): Map<string, string> {
  const out = new Map<string, string>();
  for (const area of fs.readdirSync(luaDir()).filter((d) => fs.existsSync(luaDir(d, "lua"))))
    for (const s of readScripts(luaDir(area, "lua"))) out.set(createHash("sha1").update(s.lua).digest("hex"), s.name);
  return out;
}

/** Between a command's name and the shape of its first key in RedisTap's counts. */
export const KEY_SEP = " | ";

function commandName(args: readonly string[], scripts: ReadonlyMap<string, string>): string {
  const cmd = (args[0] ?? "?").toUpperCase();
  if (cmd === "EVALSHA") return `EVALSHA ${scripts.get(args[1] ?? "") ?? (args[1] ?? "?").slice(0, 8)}`;
  if (cmd === "EVAL") return `EVAL ${scripts.get(createHash("sha1").update(args[1] ?? "").digest("hex")) ?? "?"}`;
  return cmd;
}

/** The first key a command names, with the run's namespace, ids and numbers made generic: which part of the code sent it. */
function keyShape(args: readonly string[]): string {
  const cmd = (args[0] ?? "").toUpperCase();
  const streams = args.findIndex((a) => a.toUpperCase() === "STREAMS");
  const key = cmd.startsWith("EVAL") ? (Number(args[2]) > 0 ? args[3] : "") : cmd === "XREADGROUP" ? args[streams + 1] : args[1];
  return (key ?? "")
    .replace(/[a-z]+[0-9a-f]{16}/g, "<ns>")
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, "<id>")
    .replace(/\d+/g, "#");
}

/** Counts keyed `NAME | key shape` summed by name. */
export function byCommand(counts: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of counts) {
    const name = k.split(KEY_SEP)[0] ?? k;
    out.set(name, (out.get(name) ?? 0) + v);
  }
  return out;
}

/**
 * Counts, by command name (EVALSHA and EVAL by script name) and the shape of the first key, the Redis commands sent by the given processes while it
 * runs (MONITOR; commands that Lua scripts run inside the server are not sent by a
 * client and are not counted). The Redis server is shared: only clients whose TCP
 * port belongs to one of `pids()` count.
 */
export class RedisTap {
  private readonly bySource = new Map<string, Map<string, number>>();
  private readonly ports = new Set<number>();
  private readonly conns: Redis[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly pids: () => number[]) {}

  async start(): Promise<void> {
    const redisPort = Number(new URL(REDIS_TEST_URL).port || 6379);
    const scan = () => {
      for (const pid of this.pids()) for (const p of clientPorts(pid, redisPort)) this.ports.add(p);
    };
    scan();
    this.timer = setInterval(scan, 250);
    const redis = new Redis(REDIS_TEST_URL);
    const monitor = await redis.monitor();
    this.conns.push(redis, monitor);
    const scripts = scriptsBySha();
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      const cmd = `${commandName(args, scripts)}${KEY_SEP}${keyShape(args)}`;
      const m = this.bySource.get(source) ?? new Map<string, number>();
      m.set(cmd, (m.get(cmd) ?? 0) + 1);
      this.bySource.set(source, m);
    });
  }

  /** Stops listening. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const c of this.conns) c.disconnect();
  }

  /** The commands counted so far, by name. */
  counts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [source, m] of this.bySource) {
      const port = Number(source.split(":").at(-1));
      if (!this.ports.has(port)) continue;
      for (const [cmd, n] of m) out.set(cmd, (out.get(cmd) ?? 0) + n);
    }
    return out;
  }
}

/** INFO commandstats, server-wide: calls by command name. */
export async function commandStats(): Promise<Map<string, number>> {
  const redis = new Redis(REDIS_TEST_URL);
  try {
    const text = await redis.info("commandstats");
    const out = new Map<string, number>();
    for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set((m[1] ?? "?").toUpperCase(), Number(m[2]));
    return out;
  } finally {
    redis.disconnect();
  }
}

/** `after - before`, per key, zeros left out. */
export function delta(after: ReadonlyMap<string, number>, before: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out.set(k, d);
  }
  return out;
}

/** Where a node preloaded with brokerCounter.cjs writes its counts. */
export const BROKER_COUNTER = path.join(__dirname, "brokerCounter.cjs");

/** The Moleculer traffic counted by brokerCounter.cjs in every process writing to `dir`, summed. */
export function brokerCounts(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (!f.endsWith(".json")) continue;
    try {
      const { counts } = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as { counts: Record<string, number> };
      for (const [k, v] of Object.entries(counts)) out.set(k, (out.get(k) ?? 0) + v);
    } catch {
      // written at this very moment: the next reading has it
    }
  }
  return out;
}

/** Resident set of a process, in bytes, from /proc (Linux); 0 when it cannot be read. */
export function rssOf(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb === undefined ? 0 : Number(kb) * 1024;
  } catch {
    return 0;
  }
}

/** CPU time (user + system) `pid` has used, in ms, from /proc/<pid>/stat. */
export function cpuMs(pid: number): number {
  try {
    return statCpu(fs.readFileSync(`/proc/${pid}/stat`, "utf8")).own;
  } catch {
    return NaN;
  }
}

/** A /proc stat line's process name and CPU ms: its own (utime, stime) and its waited-for children's (cutime, cstime). */
function statCpu(stat: string): { name: string; own: number; children: number } {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 to 17 of stat, in clock ticks of 10 ms; the slice starts at field 3.
  return {
    name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
    own: (Number(fields[11]) + Number(fields[12])) * 10,
    children: (Number(fields[13]) + Number(fields[14])) * 10,
  };
}

/**
 * The write system calls `pid` has made so far (`syscw` of /proc/<pid>/io: write, writev, pwrite). A Node
 * process writes its sockets with write and writev, so each socket write is one, and so is each log line
 * written to stdout. Postgres answers its clients with send(), which this does not count.
 */
export function writeCalls(pid: number): number {
  try {
    return Number(/^syscw: (\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/io`, "utf8"))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/** The infrastructure servers whose CPU a run also reports (by process name). */
export const SERVERS = ["postgres", "redis-server", "nats-server"] as const;

/**
 * CPU ms every process of each of `names` used so far, with what its exited children used (a Postgres backend
 * that ended is counted in the postmaster's), in one pass over /proc. Whatever else uses the same server on
 * this machine is counted too.
 */
export function serversCpuMs(names: readonly string[]): Map<string, number> {
  const totals = new Map(names.map((n) => [n, 0]));
  forEachProcessNamed(names, (name, _pid, stat) => {
    const cpu = statCpu(stat);
    totals.set(name, (totals.get(name) ?? 0) + cpu.own + cpu.children);
  });
  return totals;
}

/** The servers whose write system calls a run also reports: Postgres' socket sends are not write calls. */
export const WRITING_SERVERS = ["redis-server", "nats-server"] as const;

/** The write system calls every live process of each of `names` has made so far (one that ended is not counted). */
export function serversWriteCalls(names: readonly string[]): Map<string, number> {
  const totals = new Map(names.map((n) => [n, 0]));
  forEachProcessNamed(names, (name, pid) => {
    const n = writeCalls(pid);
    // Gone between the listing and the read.
    if (!Number.isNaN(n)) totals.set(name, (totals.get(name) ?? 0) + n);
  });
  return totals;
}

/** `each` for every live process whose name (/proc/<pid>/stat) is one of `names`, with its stat line. */
function forEachProcessNamed(names: readonly string[], each: (name: string, pid: number, stat: string) => void): void {
  const wanted = new Set(names);
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue;
    }
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    if (wanted.has(name)) each(name, Number(entry), stat);
  }
}

/** A sorted "NAME n (per task)" listing of counts divided by `per`. */
export function perTaskLines(counts: ReadonlyMap<string, number>, per: number, indent = "    "): string {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${indent}${k.padEnd(40)} ${String(v).padStart(7)}   ${(v / per).toFixed(2).padStart(7)} per task`)
    .join("\n");
}
