/**
 * A string that matches a JSON Schema `pattern`, for the generic policy's tool
 * inputs. Covers what tool schemas write in practice (literals, escapes, classes,
 * groups, alternation, quantifiers, anchors): the first alternative, the first
 * character of a class, and at least one repetition of anything optional. The
 * candidate is checked against the pattern; one that does not match is dropped
 * (undefined), so the caller falls back to a plain value.
 */

/** What an escape stands for when it appears outside or inside a class. */
const ESCAPES: Record<string, string> = { d: "1", D: "a", w: "a", W: "-", s: " ", S: "a", n: "\n", t: "\t", r: "\r" };
/** Zero-width escapes: they constrain, they add nothing. */
const ZERO_WIDTH = new Set(["b", "B", "A", "z", "Z", "G"]);

class Reader {
  pos = 0;
  constructor(readonly src: string) {}
  peek(): string | undefined {
    return this.src[this.pos];
  }
  next(): string {
    const c = this.src[this.pos];
    if (c === undefined) throw new Error("unexpected end of pattern");
    this.pos++;
    return c;
  }
  done(): boolean {
    return this.pos >= this.src.length;
  }
}

/** `a|b|c` up to the end or a closing parenthesis: the first alternative's sample. */
function alternatives(r: Reader): string {
  const first = sequence(r);
  while (r.peek() === "|") {
    r.next();
    sequence(r);
  }
  return first;
}

function sequence(r: Reader): string {
  let out = "";
  while (!r.done() && r.peek() !== "|" && r.peek() !== ")") {
    const atomText = atom(r);
    out += atomText.repeat(repetitions(r));
  }
  return out;
}

function atom(r: Reader): string {
  const c = r.next();
  switch (c) {
    case "^":
    case "$":
      return "";
    case ".":
      return "a";
    case "\\": {
      const e = r.next();
      if (ZERO_WIDTH.has(e)) return "";
      if (e === "u" || e === "x") return hexEscape(r, e);
      if (/[1-9]/.test(e)) throw new Error("back-references are not sampled");
      return ESCAPES[e] ?? e;
    }
    case "[":
      return charClass(r);
    case "(": {
      if (r.peek() === "?") {
        r.next();
        const kind = r.next();
        if (kind === "<" && r.peek() !== "=" && r.peek() !== "!") while (r.next() !== ">");
        else if (kind !== ":") throw new Error("lookarounds are not sampled");
      }
      const inner = alternatives(r);
      if (r.next() !== ")") throw new Error("unbalanced group");
      return inner;
    }
    default:
      return c;
  }
}

function hexEscape(r: Reader, kind: "u" | "x"): string {
  if (kind === "u" && r.peek() === "{") {
    r.next();
    let hex = "";
    while (r.peek() !== "}") hex += r.next();
    r.next();
    return String.fromCodePoint(parseInt(hex, 16));
  }
  let hex = "";
  for (let i = 0; i < (kind === "u" ? 4 : 2); i++) hex += r.next();
  return String.fromCharCode(parseInt(hex, 16));
}

/** The first member of a class; a negated class gets a letter or digit it does not list. */
function charClass(r: Reader): string {
  const negated = r.peek() === "^";
  if (negated) r.next();
  const members: string[] = [];
  let first = true;
  while (r.peek() !== "]" || first) {
    first = false;
    let c = r.next();
    if (c === "\\") {
      const e = r.next();
      c = ESCAPES[e] ?? e;
    }
    if (r.peek() === "-" && r.src[r.pos + 1] !== "]" && r.src[r.pos + 1] !== undefined) {
      r.next();
      let end = r.next();
      if (end === "\\") end = r.next();
      for (let code = c.charCodeAt(0); code <= end.charCodeAt(0) && members.length < 256; code++) members.push(String.fromCharCode(code));
    } else members.push(c);
  }
  r.next();
  if (!negated) return members[0] ?? "a";
  const candidate = [..."aA1-_x"].find((ch) => !members.includes(ch));
  if (candidate === undefined) throw new Error("negated class excludes every candidate");
  return candidate;
}

/** How many times the preceding atom is written: at least once, never more than the quantifier's minimum needs. */
function repetitions(r: Reader): number {
  const q = r.peek();
  let n = 1;
  if (q === "*" || q === "+" || q === "?") {
    r.next();
  } else if (q === "{" && /^\{\d+(,\d*)?\}/.test(r.src.slice(r.pos))) {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(r.src.slice(r.pos));
    if (!m) return 1;
    r.pos += m[0].length;
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === "" || m[3] === undefined ? Infinity : Number(m[3]);
    n = Math.min(Math.max(min, 1), max);
  } else return 1;
  // Lazy and possessive markers change matching, not what matches.
  if (r.peek() === "?" || r.peek() === "+") r.next();
  return n;
}

function compiles(pattern: string): RegExp | undefined {
  for (const flags of ["u", ""]) {
    try {
      return new RegExp(pattern, flags);
    } catch {
      // try without the unicode flag
    }
  }
  return undefined;
}

/** A string matching `pattern` (ECMA-262 syntax, unanchored as JSON Schema reads it), or undefined when none was found. */
export function samplePattern(pattern: string): string | undefined {
  const re = compiles(pattern);
  if (!re) return undefined;
  let sample: string;
  try {
    const r = new Reader(pattern);
    sample = alternatives(r);
    if (!r.done()) return undefined;
  } catch {
    return undefined;
  }
  return re.test(sample) ? sample : undefined;
}
