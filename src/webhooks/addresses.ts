/**
 * Which IP addresses a webhook may be sent to. An address is judged by its
 * bytes, never by how it was written: IPv4 in IPv6 clothing (mapped,
 * compatible, NAT64, 6to4) is unwrapped and judged as the IPv4 it reaches.
 *
 * Two kinds of refusal: `private` ones (RFC 1918, loopback, link-local, ULA,
 * CGNAT) are lifted by CLAWFLEET_WEBHOOK_ALLOW_PRIVATE=1 for tests and on-prem
 * receivers; the rest (cloud metadata, unspecified, multicast, broadcast,
 * reserved and documentation ranges, IPv4 smuggled in IPv6 forms, Teredo)
 * never are: no receiver legitimately lives there.
 */
import net from "node:net";

export type AddressKind = "public" | "private" | "never";

export interface AddressVerdict {
  kind: AddressKind;
  /** Why it is refused, e.g. "a loopback address"; empty for a public one. */
  what: string;
}

const PUBLIC: AddressVerdict = { kind: "public", what: "" };
const priv = (what: string): AddressVerdict => ({ kind: "private", what });
const never = (what: string): AddressVerdict => ({ kind: "never", what });

/** A dotted-quad IPv4 as a 32-bit number; undefined for anything else. */
export function ipv4ToNumber(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  let n = 0;
  for (const part of m.slice(1)) {
    // Canonical decimal only: "010" is octal to some parsers and decimal to others.
    if (part.length > 1 && part.startsWith("0")) return undefined;
    const v = Number(part);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

/** An IPv6 address as its 16 bytes; undefined for anything else (a zone index included). */
export function ipv6ToBytes(text: string): Uint8Array | undefined {
  if (!net.isIPv6(text) || text.includes("%")) return undefined;
  let head = text;
  const tail: number[] = [];
  // A trailing dotted quad is the last 32 bits.
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = ipv4ToNumber(dotted[2] ?? "");
    if (v4 === undefined) return undefined;
    head = dotted[1] ?? "";
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
    tail.push(v4 >>> 16, v4 & 0xffff);
  }
  const groups = (s: string) => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  const parts = head.split("::");
  if (parts.length > 2) return undefined;
  const left = groups(parts[0] ?? "");
  const right = [...groups(parts[1] ?? ""), ...tail];
  const fill = 8 - left.length - right.length;
  if (parts.length === 1 ? fill !== 0 : fill < 0) return undefined;
  const words = [...left, ...new Array<number>(parts.length === 1 ? 0 : fill).fill(0), ...right];
  if (words.length !== 8 || words.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffff)) return undefined;
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[i * 2] = w >> 8;
    bytes[i * 2 + 1] = w & 0xff;
  });
  return bytes;
}

const v4 = (a: number, b: number, c: number, d: number) => ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;

/** [network, prefix length, verdict]; the first match wins, so the narrower ranges come first. */
const IPV4_RANGES: ReadonlyArray<readonly [number, number, AddressVerdict]> = [
  [v4(169, 254, 169, 254), 32, never("a cloud metadata address")],
  [v4(168, 63, 129, 16), 32, never("a cloud metadata address (Azure)")],
  [v4(100, 100, 100, 200), 32, never("a cloud metadata address (Alibaba Cloud)")],
  [v4(255, 255, 255, 255), 32, never("the broadcast address")],
  [v4(0, 0, 0, 0), 8, never("an unspecified (\"this network\") address")],
  [v4(10, 0, 0, 0), 8, priv("a private address (10.0.0.0/8)")],
  [v4(100, 64, 0, 0), 10, priv("a shared (carrier-grade NAT) address (100.64.0.0/10)")],
  [v4(127, 0, 0, 0), 8, priv("a loopback address")],
  [v4(169, 254, 0, 0), 16, priv("a link-local address")],
  [v4(172, 16, 0, 0), 12, priv("a private address (172.16.0.0/12)")],
  [v4(192, 0, 0, 0), 24, never("a reserved address (192.0.0.0/24)")],
  [v4(192, 0, 2, 0), 24, never("a documentation address")],
  [v4(192, 88, 99, 0), 24, never("a reserved address (6to4 relay)")],
  [v4(192, 168, 0, 0), 16, priv("a private address (192.168.0.0/16)")],
  [v4(198, 18, 0, 0), 15, never("a reserved address (benchmarking)")],
  [v4(198, 51, 100, 0), 24, never("a documentation address")],
  [v4(203, 0, 113, 0), 24, never("a documentation address")],
  [v4(224, 0, 0, 0), 4, never("a multicast address")],
  [v4(240, 0, 0, 0), 4, never("a reserved address (240.0.0.0/4)")],
];

function inV4(addr: number, net4: number, bits: number): boolean {
  if (bits === 0) return true;
  const mask = bits === 32 ? 0xffffffff : (~(0xffffffff >>> bits)) >>> 0;
  return ((addr & mask) >>> 0) === ((net4 & mask) >>> 0);
}

export function classifyIpv4(addr: number): AddressVerdict {
  for (const [network, bits, verdict] of IPV4_RANGES) if (inV4(addr, network, bits)) return verdict;
  return PUBLIC;
}

const hex = (text: string): Uint8Array => ipv6ToBytes(text) ?? new Uint8Array(16);

/** [network, prefix length, verdict]; checked after the forms that wrap an IPv4 address. */
const IPV6_RANGES: ReadonlyArray<readonly [Uint8Array, number, AddressVerdict]> = [
  [hex("fd00:ec2::254"), 128, never("a cloud metadata address (AWS)")],
  [hex("::"), 128, never("the unspecified address")],
  [hex("::1"), 128, priv("a loopback address")],
  [hex("100::"), 64, never("a discard-only address")],
  [hex("2001::"), 32, never("a Teredo address")],
  [hex("2001:db8::"), 32, never("a documentation address")],
  [hex("2001:10::"), 28, never("a reserved address (ORCHID)")],
  [hex("2001:20::"), 28, never("a reserved address (ORCHIDv2)")],
  [hex("3fff::"), 20, never("a documentation address")],
  [hex("fc00::"), 7, priv("a unique local address (fc00::/7)")],
  [hex("fe80::"), 10, priv("a link-local address")],
  [hex("fec0::"), 10, priv("a site-local address")],
  [hex("ff00::"), 8, never("a multicast address")],
];

function inV6(addr: Uint8Array, network: Uint8Array, bits: number): boolean {
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((addr[i] ?? 0) & mask) !== ((network[i] ?? 0) & mask)) return false;
  }
  return true;
}

const v4At = (b: Uint8Array, i: number) => (((b[i] ?? 0) << 24) >>> 0) + ((b[i + 1] ?? 0) << 16) + ((b[i + 2] ?? 0) << 8) + (b[i + 3] ?? 0);
const dottedOf = (n: number) => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join(".");

/** An IPv6 form that carries an IPv4 address, judged by that address: public only if it is. */
function wrapped(form: string, addr: number): AddressVerdict {
  const inner = classifyIpv4(addr);
  if (inner.kind === "public") return PUBLIC;
  return never(`${form} wrapping ${dottedOf(addr)}, ${inner.what}`);
}

export function classifyIpv6(b: Uint8Array): AddressVerdict {
  const zeros = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  // ::ffff:a.b.c.d and ::a.b.c.d: an IPv4 address written as IPv6, which some stacks connect to as the IPv4.
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return never(`an IPv4-mapped IPv6 address (of ${dottedOf(v4At(b, 12))})`);
  if (zeros(0, 12) && !zeros(12, 15)) return never(`an IPv4-compatible IPv6 address (of ${dottedOf(v4At(b, 12))})`);
  // ::ffff:0:a.b.c.d, the SIIT translated form.
  if (zeros(0, 8) && b[8] === 0xff && b[9] === 0xff && zeros(10, 12)) return never(`an IPv4-translated IPv6 address (of ${dottedOf(v4At(b, 12))})`);
  if (inV6(b, hex("64:ff9b::"), 96)) return wrapped("a NAT64 address", v4At(b, 12));
  if (inV6(b, hex("64:ff9b:1::"), 48)) return never("a local-use NAT64 address");
  if (inV6(b, hex("2002::"), 16)) return wrapped("a 6to4 address", v4At(b, 2));
  for (const [network, bits, verdict] of IPV6_RANGES) if (inV6(b, network, bits)) return verdict;
  // Only 2000::/3 is allocated as global unicast; anything else is unassigned or special.
  if (((b[0] ?? 0) & 0xe0) !== 0x20) return never("a reserved IPv6 address");
  return PUBLIC;
}

/** Judges an address as text (IPv4 dotted quad or IPv6); a string that is neither is `never`. */
export function classifyAddress(address: string): AddressVerdict {
  const n = ipv4ToNumber(address);
  if (n !== undefined) return classifyIpv4(n);
  if (address.includes("%")) return never("an IPv6 address with a zone index");
  const b = ipv6ToBytes(address);
  if (b !== undefined) return classifyIpv6(b);
  return never("not an IP address");
}

/** Why `address` may not be called, or undefined when it may; `allowPrivate` lifts the private refusals. */
export function addressRefusal(address: string, allowPrivate: boolean): string | undefined {
  const v = classifyAddress(address);
  if (v.kind === "public" || (v.kind === "private" && allowPrivate)) return undefined;
  return v.what;
}
