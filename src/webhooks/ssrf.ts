/**
 * The SSRF guard: whether Clawfleet will POST to a webhook URL, checked when
 * the task is submitted and again before every attempt (DNS changes).
 *
 * The URL is parsed by the WHATWG parser, which writes every IPv4 spelling
 * (decimal, hex, octal, short forms) as a dotted quad and drops what is not a
 * host; the host is then resolved (every A and AAAA record) and refused if ANY
 * address is not allowed (src/webhooks/addresses.ts). The check hands back the
 * address it judged, and the connection is made to that address only
 * (`pinnedLookup`), so a DNS answer that changes between the check and the
 * connect (rebinding) cannot move it.
 */
import dns from "node:dns";
import type net from "node:net";
import { UnavailableError, WebhookUrlRefusedError } from "../errors";
import { addressRefusal, ipv4ToNumber, ipv6ToBytes } from "./addresses";

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Every address a host name resolves to. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

/** The system's resolver (getaddrinfo through dns.lookup, as an HTTP client would use), every A and AAAA record. */
export const systemResolver: Resolver = async (hostname) =>
  (await dns.promises.lookup(hostname, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

export interface GuardOptions {
  /** CLAWFLEET_WEBHOOK_ALLOW_PRIVATE: lifts the refusal of private, loopback, link-local, ULA and CGNAT addresses. */
  allowPrivate: boolean;
  /** @default systemResolver */
  resolve?: Resolver;
  /** Why an address may not be called, or undefined. @default addressRefusal(address, allowPrivate) */
  refuseAddress?: (address: string) => string | undefined;
  /** How long resolving may take. @default 5000 */
  resolveTimeoutMs?: number;
}

/** A URL the guard allowed, with the one address the connection must go to. */
export interface CheckedTarget {
  url: URL;
  /** The host as the request names it (Host header, TLS server name): brackets and a trailing dot removed. */
  host: string;
  address: string;
  family: 4 | 6;
}

/** Names that reach cloud instance metadata whatever the resolver says. */
const METADATA_NAMES: ReadonlySet<string> = new Set(["metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"]);

const refused = (reason: string) => new WebhookUrlRefusedError(`webhook URL refused: ${reason}`, { field: "webhook.url", reason });

/** DNS answers that say the name does not exist, as opposed to a resolver that failed for now. */
const NO_SUCH_NAME = new Set(["ENOTFOUND", "ENODATA", "EAI_NONAME", "EAI_NODATA"]);

export class WebhookGuard {
  private readonly resolve: Resolver;
  private readonly refuseAddress: (address: string) => string | undefined;
  private readonly resolveTimeoutMs: number;

  constructor(opts: GuardOptions) {
    this.resolve = opts.resolve ?? systemResolver;
    this.refuseAddress = opts.refuseAddress ?? ((a) => addressRefusal(a, opts.allowPrivate));
    this.resolveTimeoutMs = opts.resolveTimeoutMs ?? 5000;
  }

  /**
   * The target `raw` may be sent to; WebhookUrlRefusedError (422) with the reason otherwise, and
   * UnavailableError (503) when the resolver failed for now (not for a name that does not exist).
   */
  async check(raw: string): Promise<CheckedTarget> {
    const url = parseUrl(raw);
    const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname.replace(/\.$/, "");
    if (host === "") throw refused("the URL names no host");
    const literal = ipv4ToNumber(host) !== undefined ? 4 : ipv6ToBytes(host) !== undefined ? 6 : undefined;
    let addresses: ResolvedAddress[];
    if (literal !== undefined) {
      addresses = [{ address: host, family: literal }];
    } else {
      const name = host.toLowerCase();
      if (METADATA_NAMES.has(name)) throw refused(`${name} is a cloud metadata service`);
      addresses = await this.lookup(name);
    }
    for (const a of addresses) {
      const why = this.refuseAddress(a.address);
      if (why !== undefined) throw refused(literal !== undefined ? `${a.address} is ${why}` : `${host} resolves to ${a.address}, ${why}`);
    }
    const first = addresses[0];
    if (first === undefined) throw refused(`${host} resolves to no address`);
    return { url, host, address: first.address, family: first.family };
  }

  private async lookup(host: string): Promise<ResolvedAddress[]> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error("timed out"), { code: "ETIMEOUT" })), this.resolveTimeoutMs);
    });
    try {
      return await Promise.race([this.resolve(host), timeout]);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === "string" && NO_SUCH_NAME.has(code)) throw refused(`${host} does not resolve (${code})`);
      throw new UnavailableError(`could not resolve the webhook host ${host} now (${typeof code === "string" ? code : "error"}); retry shortly`, {
        retryAfter: 5,
      });
    } finally {
      clearTimeout(timer);
    }
  }
}

function parseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refused("not an absolute URL (an IPv6 zone index, for one, is not accepted)");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw refused(`the scheme ${url.protocol.replace(/:$/, "")} is not http or https`);
  // The URL is shown on the task, and credentials in it are how `http://good.example@127.0.0.1/` misleads a reader.
  if (url.username !== "" || url.password !== "") throw refused("the URL carries credentials (user:password@); use a signing secret instead");
  return url;
}

/**
 * A `lookup` that answers the checked address whatever name it is asked for: given to the connection,
 * it pins it to what the guard judged. Both of Node's calling conventions (`all` or not) are answered.
 */
export function pinnedLookup(target: Pick<CheckedTarget, "address" | "family">): net.LookupFunction {
  return (_hostname, options, callback) => {
    if (options.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
}
