/**
 * Where a process's CPU time went, from the `.cpuprofile` files `node --cpu-prof`
 * wrote (bench/throughput/run.ts --profile dir): for each folder of profiles (one
 * per role), the top functions by self time and the self time by package
 * (a node_modules package, the project's own folders, Node's internals, GC, idle).
 *
 *   npx tsx bench/throughput/profileTop.ts <dir> [--top 15]
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: CallFrame }>;
  samples: number[];
  timeDeltas: number[];
}

const { values: args, positionals } = parseArgs({ options: { top: { type: "string", default: "15" } }, allowPositionals: true });
const TOP = Number(args.top);

function profilesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return profilesUnder(p);
    return e.name.endsWith(".cpuprofile") ? [p] : [];
  });
}

/** The package or area a frame's code belongs to. */
function areaOf(f: CallFrame): string {
  if (f.url === "") return f.functionName.startsWith("(") ? f.functionName : "(native)";
  const nm = f.url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = f.url.slice(nm + "node_modules/".length).split("/");
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1] ?? ""}` : (rest[0] ?? "?");
  }
  if (f.url.startsWith("node:")) return "node internals";
  const m = /\/(src|services|app|mixins|examples|bench|testkit)\/([^/]+)/.exec(f.url);
  return m ? `${m[1]}/${m[2]}` : f.url;
}

/** Self time (ms) by function and by area, summed over `files`. */
function selfTimes(files: readonly string[]): { total: number; byFunction: Map<string, number>; byArea: Map<string, number> } {
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  for (const file of files) {
    const prof = JSON.parse(fs.readFileSync(file, "utf8")) as CpuProfile;
    const frames = new Map(prof.nodes.map((n) => [n.id, n.callFrame]));
    prof.samples.forEach((id, i) => {
      const ms = (prof.timeDeltas[i] ?? 0) / 1000;
      const f = frames.get(id);
      if (!f) return;
      const where = f.url === "" ? "" : ` ${f.url.replace(/^.*\/(node_modules|work\/main)\//, "")}:${f.lineNumber + 1}`;
      const fn = `${f.functionName || "(anonymous)"}${where}`;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + ms);
      const area = areaOf(f);
      byArea.set(area, (byArea.get(area) ?? 0) + ms);
      total += ms;
    });
  }
  return { total, byFunction, byArea };
}

function top(m: Map<string, number>, total: number, n: number): string {
  return [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `    ${((100 * v) / total).toFixed(1).padStart(5)}%  ${v.toFixed(0).padStart(7)} ms  ${k}`)
    .join("\n");
}

function main(): void {
  const dir = positionals[0];
  if (!dir) throw new Error("usage: profileTop.ts <dir of .cpuprofile files> [--top N]");
  const groups = new Map<string, string[]>();
  for (const f of profilesUnder(dir)) {
    const g = path.relative(dir, path.dirname(f)) || ".";
    groups.set(g, [...(groups.get(g) ?? []), f]);
  }
  for (const [group, files] of [...groups].sort()) {
    const { total, byFunction, byArea } = selfTimes(files);
    process.stdout.write(`${group}: ${files.length} profile(s), ${(total / 1000).toFixed(1)} s sampled\n`);
    process.stdout.write(`  top ${TOP} functions by self time:\n${top(byFunction, total, TOP)}\n`);
    process.stdout.write(`  self time by package/area:\n${top(byArea, total, TOP)}\n\n`);
  }
}

main();
