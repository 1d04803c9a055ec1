/**
 * Where a process's CPU time went, from the `.cpuprofile` files `node --cpu-prof`
 * wrote (bench/throughput/run.ts --profile dir): for each folder of profiles (one
 * per role), the top functions by self time and the self time by package
 * (a node_modules package, the project's own folders, Node's internals, GC, idle).
 *
 * `--owner` charges each sample instead to the nearest frame above it that is a package's or the
 * project's own (Node's internals and system calls, a socket write say, count for whoever called
 * them), as shares of the busy time: by package or folder, and by that frame.
 *
 *   npx tsx bench/throughput/profileTop.ts <dir> [--top 15] [--owner]
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
  nodes: Array<{ id: number; callFrame: CallFrame; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
}

const { values: args, positionals } = parseArgs({ options: { top: { type: "string", default: "15" }, owner: { type: "boolean", default: false } }, allowPositionals: true });
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

/** The area of a frame that is a package's or the project's own; undefined for Node's internals, natives, GC and idle. */
function ownedArea(f: CallFrame): string | undefined {
  if (f.url === "" || f.url.startsWith("node:")) return undefined;
  return areaOf(f);
}

/** A frame's name and place, as the tables print it. */
function frameName(f: CallFrame): string {
  const where = f.url === "" ? "" : ` ${f.url.replace(/^.*\/(node_modules|work\/main)\//, "")}:${f.lineNumber + 1}`;
  return `${f.functionName || "(anonymous)"}${where}`;
}

interface Times {
  total: number;
  byFunction: Map<string, number>;
  byArea: Map<string, number>;
}

/**
 * The samples of `files` summed by what `charge` names for each (a function and an area; undefined: not counted).
 * `charge` gets the profile's frames and each node's parent, and the sample's node id.
 */
function sumSamples(files: readonly string[], charge: (id: number, frames: Map<number, CallFrame>, parent: Map<number, number>) => { fn: string; area: string } | undefined): Times {
  const times: Times = { total: 0, byFunction: new Map(), byArea: new Map() };
  for (const file of files) {
    const prof = JSON.parse(fs.readFileSync(file, "utf8")) as CpuProfile;
    const frames = new Map(prof.nodes.map((n) => [n.id, n.callFrame]));
    const parent = new Map<number, number>();
    for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    prof.samples.forEach((id, i) => {
      const to = charge(id, frames, parent);
      if (!to) return;
      const ms = (prof.timeDeltas[i] ?? 0) / 1000;
      times.byFunction.set(to.fn, (times.byFunction.get(to.fn) ?? 0) + ms);
      times.byArea.set(to.area, (times.byArea.get(to.area) ?? 0) + ms);
      times.total += ms;
    });
  }
  return times;
}

/** Self time (ms) by function and by area, summed over `files`. */
function selfTimes(files: readonly string[]): Times {
  return sumSamples(files, (id, frames) => {
    const f = frames.get(id);
    return f && { fn: frameName(f), area: areaOf(f) };
  });
}

/**
 * Busy time (ms, idle left out) charged to the nearest owned frame at or above each sample: by area and by that
 * frame. A sample with no owned frame above it keeps its own name.
 */
function ownerTimes(files: readonly string[]): Times {
  return sumSamples(files, (id, frames, parent) => {
    const own = frames.get(id);
    if (!own || own.functionName === "(idle)") return undefined;
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const f = frames.get(at);
      const area = f && ownedArea(f);
      if (f && area) return { fn: frameName(f), area };
    }
    const none = `(none: ${own.functionName || "(anonymous)"})`;
    return { fn: none, area: none };
  });
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
    if (args.owner) {
      const { total: busy, byFunction, byArea } = ownerTimes(files);
      process.stdout.write(`${group}: ${files.length} profile(s), ${(busy / 1000).toFixed(1)} s busy\n`);
      process.stdout.write(`  busy time by the package or folder whose code caused it:\n${top(byArea, busy, TOP)}\n`);
      process.stdout.write(`  busy time by the nearest own frame:\n${top(byFunction, busy, TOP)}\n\n`);
      continue;
    }
    const { total, byFunction, byArea } = selfTimes(files);
    process.stdout.write(`${group}: ${files.length} profile(s), ${(total / 1000).toFixed(1)} s sampled\n`);
    process.stdout.write(`  top ${TOP} functions by self time:\n${top(byFunction, total, TOP)}\n`);
    process.stdout.write(`  self time by package/area:\n${top(byArea, total, TOP)}\n\n`);
  }
}

main();
