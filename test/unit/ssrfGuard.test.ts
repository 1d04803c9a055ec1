/**
 * webhooks - the SSRF guard: a corpus of known bypasses is refused in full
 * (every IPv4 spelling, IPv6 forms, IPv4 wrapped in IPv6, userinfo tricks,
 * trailing dots, names that resolve to private addresses), public targets pass,
 * CLAWFLEET_WEBHOOK_ALLOW_PRIVATE lifts only the private refusals, and real
 * connections prove the pin (DNS rebinding cannot move it) and that redirects
 * are never followed.
 *
 * Names resolve through a stub resolver, never the machine's DNS. The local
 * HTTP servers live on loopback, which the guard refuses: the tests that
 * connect exempt exactly the harness's 127.0.0.1 (an injected address policy),
 * and everything else stays refused.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UnavailableError, WebhookUrlRefusedError } from "../../src/errors";
import { addressRefusal, postWebhook, WebhookGuard, type Resolver } from "../../src/webhooks";

type Answer = string[] | Error;

/** A resolver stub: a name's answers in turn (the last one repeats); an unknown name does not exist. */
function stubResolver(table: Record<string, Answer | Answer[]>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const served = new Map<string, number>();
  const resolve = async (host: string) => {
    calls.push(host);
    const entry = table[host];
    if (entry === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    const turns: Answer[] = Array.isArray(entry) && entry.some((e) => Array.isArray(e) || e instanceof Error) ? (entry as Answer[]) : [entry as Answer];
    const n = served.get(host) ?? 0;
    served.set(host, n + 1);
    const answer = turns[Math.min(n, turns.length - 1)] ?? [];
    if (answer instanceof Error) throw answer;
    return answer.map((address) => ({ address, family: address.includes(":") ? (6 as const) : (4 as const) }));
  };
  return Object.assign(resolve, { calls });
}

const NAMES = {
  "hooks.example.com": ["93.184.216.34"],
  "v6.example.com": ["2606:2800:220:1:248:1893:25c8:1946"],
  "localhost": ["127.0.0.1", "::1"],
  "mixed.example.com": ["93.184.216.34", "10.0.0.7"],
  "mixed6.example.com": ["2606:2800:220:1::1", "fd12:3456::1"],
  "internal.example.com": ["192.168.1.20"],
  "metadata.example.com": ["169.254.169.254"],
  "aws6.example.com": ["fd00:ec2::254"],
  "mapped.example.com": ["::ffff:10.0.0.1"],
  "nat64.example.com": ["64:ff9b::a9fe:a9fe"],
  "sixtofour.example.com": ["2002:c0a8:0101::1"],
  "teredo.example.com": ["2001:0:4136:e378:8000:63bf:3fff:fdd2"],
  "cgnat.example.com": ["100.64.0.1"],
  "zero.example.com": ["0.0.0.0"],
  "bcast.example.com": ["255.255.255.255"],
  "mcast.example.com": ["224.0.0.251"],
  "127.0.0.1.nip.example": ["127.0.0.1"],
} satisfies Record<string, string[]>;

/** Every entry must be refused. */
const CORPUS: readonly string[] = [
  // IPv4 spellings the WHATWG parser turns into 127.0.0.1 (or 10.0.0.1)
  "http://127.0.0.1/",
  "http://2130706433/",
  "http://0x7f000001/",
  "http://0x7f.0.0.1/",
  "http://0x7F.0x0.0x0.0x1/",
  "http://0177.0.0.1/",
  "http://017700000001/",
  "http://0177.1/",
  "http://127.1/",
  "http://127.0.1/",
  "http://10.1/",
  "http://%31%32%37.0.0.1/",
  "http://127。0。0。1/",
  "http://０x7f.1/",
  "http://0/",
  "http://0.0.0.0/",
  "http://0x0/",
  // private, link-local, CGNAT, metadata, broadcast, multicast, reserved literals
  "http://10.0.0.1/",
  "http://172.16.0.1/",
  "http://172.31.255.255/",
  "http://192.168.0.1/",
  "http://169.254.0.1/",
  "http://169.254.169.254/latest/meta-data/",
  "http://100.64.0.1/",
  "http://100.100.100.200/",
  "http://168.63.129.16/",
  "http://192.0.0.192/",
  "http://255.255.255.255/",
  "http://224.0.0.1/",
  "http://240.0.0.1/",
  "http://198.18.0.1/",
  // IPv6 forms
  "http://[::1]/",
  "http://[0:0:0:0:0:0:0:1]/",
  "http://[0000:0000:0000:0000:0000:0000:0000:0001]/",
  "http://[::]/",
  "http://[::ffff:127.0.0.1]/",
  "http://[::ffff:7f00:1]/",
  "http://[::ffff:10.0.0.1]/",
  "http://[::ffff:169.254.169.254]/",
  "http://[::127.0.0.1]/",
  "http://[::7f00:1]/",
  "http://[::ffff:0:127.0.0.1]/",
  "http://[fe80::1]/",
  "http://[fe80::1%25eth0]/",
  "http://[fc00::1]/",
  "http://[fd00::1]/",
  "http://[fd00:ec2::254]/",
  "http://[ff02::1]/",
  "http://[64:ff9b::7f00:1]/",
  "http://[64:ff9b::10.0.0.1]/",
  "http://[64:ff9b::a9fe:a9fe]/",
  "http://[2002:7f00:1::1]/",
  "http://[2002:a00:1::]/",
  "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
  "http://[2001:db8::1]/",
  "http://[100::1]/",
  // userinfo tricks: the host is what follows the last @
  "http://example.com@127.0.0.1/",
  "http://hooks.example.com:80@127.0.0.1/",
  "http://user:pass@hooks.example.com/",
  "http://127.0.0.1#@hooks.example.com/",
  "http://127.0.0.1\\@hooks.example.com/",
  // trailing dots and names
  "http://127.0.0.1./",
  "http://localhost/",
  "http://localhost./",
  "http://LOCALHOST:8080/",
  "http://metadata.google.internal/computeMetadata/v1/",
  "http://metadata.google.internal./",
  "http://metadata/",
  "http://127.0.0.1.nip.example/",
  "http://mixed.example.com/",
  "http://mixed6.example.com/",
  "http://internal.example.com/",
  "http://metadata.example.com/",
  "http://aws6.example.com/",
  "http://mapped.example.com/",
  "http://nat64.example.com/",
  "http://sixtofour.example.com/",
  "http://teredo.example.com/",
  "http://cgnat.example.com/",
  "http://zero.example.com/",
  "http://bcast.example.com/",
  "http://mcast.example.com/",
  "http://does-not-exist.example.com/",
  // schemes and non-URLs
  "file:///etc/passwd",
  "gopher://127.0.0.1:6379/_INFO",
  "ftp://hooks.example.com/",
  "javascript:alert(1)",
  "//hooks.example.com/",
  "hooks.example.com/webhook",
  "http://",
  "http://1.2.3.4.5/",
];

const guard = (allowPrivate: boolean) => new WebhookGuard({ allowPrivate, resolve: stubResolver(NAMES) });

async function refusal(g: WebhookGuard, url: string): Promise<string | undefined> {
  try {
    await g.check(url);
    return undefined;
  } catch (err) {
    if (!(err instanceof WebhookUrlRefusedError)) throw err;
    expect(err.code).toBe(422);
    return String((err.data as { reason?: unknown }).reason);
  }
}

describe("webhooks - SSRF corpus", () => {
  it("refuses every URL of the bypass corpus, each with a reason", async () => {
    const g = guard(false);
    const passed: string[] = [];
    const reasons: string[] = [];
    for (const url of CORPUS) {
      const why = await refusal(g, url);
      if (why === undefined) passed.push(url);
      else reasons.push(`${url} -> ${why}`);
    }
    console.log(`SSRF corpus: ${CORPUS.length - passed.length}/${CORPUS.length} refused`);
    expect(passed).toEqual([]);
    expect(reasons.every((r) => r.split(" -> ")[1]?.length)).toBe(true);
  });

  it("says which address, and what it is", async () => {
    const g = guard(false);
    await expect(refusal(g, "http://0x7f.1/")).resolves.toBe("127.0.0.1 is a loopback address");
    await expect(refusal(g, "http://mixed.example.com/")).resolves.toBe("mixed.example.com resolves to 10.0.0.7, a private address (10.0.0.0/8)");
    await expect(refusal(g, "http://[::ffff:127.0.0.1]/")).resolves.toBe("::ffff:7f00:1 is an IPv4-mapped IPv6 address (of 127.0.0.1)");
    await expect(refusal(g, "http://[64:ff9b::10.0.0.1]/")).resolves.toMatch(/NAT64 address wrapping 10\.0\.0\.1/);
    await expect(refusal(g, "http://example.com@127.0.0.1/")).resolves.toMatch(/credentials/);
    await expect(refusal(g, "http://metadata.google.internal./")).resolves.toBe("metadata.google.internal is a cloud metadata service");
  });

  it("lets public targets through, IPv4 and IPv6, and IPv4 wrapped in IPv6 only when the IPv4 is public", async () => {
    const g = guard(false);
    for (const url of [
      "https://hooks.example.com/clawfleet",
      "http://hooks.example.com./x?y=1",
      "https://v6.example.com:8443/",
      "http://93.184.216.34/",
      "http://[2606:2800:220:1:248:1893:25c8:1946]/",
      "http://[64:ff9b::5db8:d822]/",
      "http://[2002:5db8:d822::1]/",
    ]) {
      await expect(refusal(g, url), url).resolves.toBeUndefined();
    }
    const target = await g.check("https://hooks.example.com/clawfleet");
    expect(target).toMatchObject({ host: "hooks.example.com", address: "93.184.216.34", family: 4 });
  });

  it("CLAWFLEET_WEBHOOK_ALLOW_PRIVATE lifts the private refusals only: metadata, mapped forms, multicast stay refused", async () => {
    const g = guard(true);
    for (const url of ["http://127.0.0.1:8080/", "http://localhost/", "http://[::1]/", "http://10.0.0.1/", "http://internal.example.com/", "http://[fd00::1]/", "http://100.64.0.1/"]) {
      await expect(refusal(g, url), url).resolves.toBeUndefined();
    }
    for (const url of [
      "http://169.254.169.254/",
      "http://[fd00:ec2::254]/",
      "http://metadata.google.internal/",
      "http://[::ffff:127.0.0.1]/",
      "http://[64:ff9b::7f00:1]/",
      "http://0.0.0.0/",
      "http://224.0.0.1/",
      "http://user:pass@localhost/",
      "file:///etc/passwd",
    ]) {
      await expect(refusal(g, url), url).resolves.toBeDefined();
    }
    expect(addressRefusal("127.0.0.1", true)).toBeUndefined();
    expect(addressRefusal("169.254.169.254", true)).toBe("a cloud metadata address");
  });

  it("a resolver that fails for now is a 503 to retry, not a refusal", async () => {
    const g = new WebhookGuard({ allowPrivate: false, resolve: stubResolver({ "flaky.example.com": Object.assign(new Error("EAI_AGAIN"), { code: "EAI_AGAIN" }) }) });
    await expect(g.check("http://flaky.example.com/")).rejects.toBeInstanceOf(UnavailableError);
  });
});

interface Hit {
  local: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** An HTTP server on `host` that records each request and answers with `answer`. */
async function server(host: string, answer: (res: http.ServerResponse) => void, port = 0) {
  const hits: Hit[] = [];
  const srv = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      hits.push({ local: req.socket.localAddress ?? "", headers: req.headers, body });
      answer(res);
    });
  });
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(port, host, resolve);
  });
  return { hits, port: (srv.address() as AddressInfo).port, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

/** The test harness's receiver, and only it, counts as public. */
const harnessOnly = (address: string) => (address === "127.0.0.1" ? undefined : addressRefusal(address, false));
const send = { timeoutMs: 5_000, connectTimeoutMs: 2_000 };

describe("webhooks - the connection goes where the guard looked", () => {
  let receiver: Awaited<ReturnType<typeof server>>;
  let rebound: Awaited<ReturnType<typeof server>>;

  beforeAll(async () => {
    receiver = await server("127.0.0.1", (res) => res.writeHead(204).end());
    // The address a rebinding resolver switches to: same port, another loopback address.
    rebound = await server("127.0.0.2", (res) => res.writeHead(200).end(), receiver.port);
  });
  afterAll(async () => {
    await receiver?.close();
    await rebound?.close();
  });

  it("DNS rebinding: the resolver answers the checked address first and a private one after; the POST still reaches the first", async () => {
    const resolve = stubResolver({ "rebind.example.com": [["127.0.0.1"], ["127.0.0.2"]] });
    const g = new WebhookGuard({ allowPrivate: false, resolve, refuseAddress: harnessOnly });
    const before = { receiver: receiver.hits.length, rebound: rebound.hits.length };
    const target = await g.check(`http://rebind.example.com:${receiver.port}/hook`);
    expect(target.address).toBe("127.0.0.1");
    const out = await postWebhook(target, { "webhook-id": "msg_rebind" }, "{}", send);
    expect(out).toMatchObject({ delivered: true, statusCode: 204, error: null });
    expect(receiver.hits.length - before.receiver).toBe(1);
    expect(rebound.hits.length - before.rebound).toBe(0);
    // The connection never asked the resolver again: only the guard did, once.
    expect(resolve.calls).toEqual(["rebind.example.com"]);
    expect(receiver.hits.at(-1)?.headers.host).toBe(`rebind.example.com:${receiver.port}`);
    // The next attempt checks again, and the name now answers a private address: refused before any connection.
    await expect(g.check(`http://rebind.example.com:${receiver.port}/hook`)).rejects.toThrow(/resolves to 127\.0\.0\.2, a loopback address/);
    expect(rebound.hits.length - before.rebound).toBe(0);
  });

  it("a redirect is a failed attempt, never followed, even towards an address the guard would refuse", async () => {
    const redirector = await server("127.0.0.1", (res) => res.writeHead(302, { Location: `http://127.0.0.2:${rebound.port}/stolen` }).end());
    try {
      const g = new WebhookGuard({ allowPrivate: false, resolve: stubResolver({ "redirect.example.com": ["127.0.0.1"] }), refuseAddress: harnessOnly });
      const before = rebound.hits.length;
      const out = await postWebhook(await g.check(`http://redirect.example.com:${redirector.port}/`), {}, '{"a":1}', send);
      expect(out).toMatchObject({ delivered: false, statusCode: 302, error: "redirect (302) not followed" });
      expect(redirector.hits).toHaveLength(1);
      expect(rebound.hits.length - before).toBe(0);
      // Where it pointed is refused in its own right.
      await expect(g.check(`http://127.0.0.2:${rebound.port}/stolen`)).rejects.toThrow(/loopback/);
    } finally {
      await redirector.close();
    }
  });

  it("an answer that does not come in time ends the attempt with a timeout", async () => {
    const silent = await server("127.0.0.1", () => undefined);
    try {
      const g = new WebhookGuard({ allowPrivate: false, refuseAddress: harnessOnly });
      const out = await postWebhook(await g.check(`http://127.0.0.1:${silent.port}/`), {}, "{}", { timeoutMs: 300, connectTimeoutMs: 300 });
      expect(out).toMatchObject({ delivered: false, statusCode: null, error: "timed out after 300 ms" });
      expect(silent.hits).toHaveLength(1);
    } finally {
      await silent.close();
    }
  });
});
