#!/usr/bin/env node
/**
 * The shape of the code, as a reader would check it: import cycles (type-only
 * imports included), duplicated code, and file sizes. `npm run shape`.
 * Exits non-zero when there is a cycle, so CI keeps the house free of them.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

const ROOTS = ["src", "services", "mixins", "app", "examples", "bench", "testkit"].filter((d) => existsSync(d));
const bin = (name) => `node_modules/.bin/${name}`;

console.log(`== import cycles (madge --circular, type imports included) over ${ROOTS.join(" ")}`);
const madge = spawnSync(bin("madge"), ["--circular", "--no-spinner", "--extensions", "ts", "--ts-config", "tsconfig.json", ...ROOTS], {
  encoding: "utf8",
});
process.stdout.write(madge.stdout.replace(/^Processed.*\n/m, (l) => l));
const cycles = madge.status !== 0;

console.log(`\n== duplicated code (jscpd: 5+ lines, 40+ tokens; TypeScript and Lua) over src services mixins app examples`);
const dupRoots = ["src", "services", "mixins", "app", "examples"].filter((d) => existsSync(d));
const jscpd = spawnSync(bin("jscpd"), ["--min-lines", "5", "--min-tokens", "40", "--format", "typescript,javascript,lua", "--reporters", "console", ...dupRoots], {
  encoding: "utf8",
});
const dupOut = `${jscpd.stdout}${jscpd.stderr}`;
const clones = [...dupOut.matchAll(/Clone found \(\w+\):\s*\n\s*- (.+)\n\s*(.+)/g)].map((m) => `  ${m[1].trim()}  ~  ${m[2].trim()}`);
for (const c of clones) console.log(c);
const total = /│ Total:.*/.exec(dupOut)?.[0]?.replace(/\s+│\s*/g, " | ") ?? "";
console.log(`${clones.length} clones${total ? ` (files, lines, tokens, clones, duplicated lines, duplicated tokens:${total.replace("│ Total:", "")})` : ""}`);

console.log(`\n== file sizes (lines) of production code: src services mixins app`);
const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "--", "src", "services", "mixins", "app"], { encoding: "utf8" })
  .split("\n")
  .filter((f) => f.endsWith(".ts") && existsSync(f));
const sized = files.map((f) => ({ f, n: readFileSync(f, "utf8").split("\n").length - 1 })).sort((a, b) => b.n - a.n);
const sorted = sized.map((s) => s.n).sort((a, b) => a - b);
const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
console.log(`files: ${sized.length}, lines: ${sorted.reduce((a, b) => a + b, 0)}, median: ${median}, over 300: ${sized.filter((s) => s.n > 300).length}`);
for (const s of sized.slice(0, 15)) console.log(`  ${String(s.n).padStart(5)}  ${s.f}`);

process.exit(cycles ? 1 : 0);
