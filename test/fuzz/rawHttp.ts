/**
 * HTTP/1.1 over a bare TCP socket, so a fuzz case controls every byte it sends:
 * header values a client library would refuse, a Content-Length that lies, a body
 * in any encoding. One request per connection, so a lying request cannot
 * desynchronise the next one. The connection is kept alive, as a browser's is,
 * until the answer is complete: a server that answers before it read a body, on a
 * connection the client asked to close, resets it, and the answer is lost.
 */
import net from "node:net";

export interface RawRequest {
  method: string;
  /** Sent as it is: the fuzz case encodes (or does not encode) it. */
  target: string | Buffer;
  /** Name and value, sent in order, as given (duplicates allowed). */
  headers: ReadonlyArray<readonly [string, string | Buffer]>;
  body?: Buffer;
  /** Content-Length to declare instead of the body's length; `null` sends none. @default the body's length */
  contentLength?: number | null;
  /** Half-closes the connection once the bytes are written. @default false */
  halfClose?: boolean;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** `undefined` when the server closed without answering or said nothing within `timeoutMs`. */
export async function rawRequest(port: number, req: RawRequest, timeoutMs = 10_000): Promise<RawResponse | undefined> {
  const body = req.body ?? Buffer.alloc(0);
  const head: Buffer[] = [Buffer.from(`${req.method} `, "latin1"), Buffer.isBuffer(req.target) ? req.target : Buffer.from(req.target, "latin1"), Buffer.from(" HTTP/1.1\r\n")];
  head.push(Buffer.from(`Host: 127.0.0.1:${port}\r\n`));
  for (const [name, value] of req.headers) head.push(Buffer.from(`${name}: `, "latin1"), Buffer.isBuffer(value) ? value : Buffer.from(value, "latin1"), Buffer.from("\r\n"));
  const length = req.contentLength === undefined ? body.length : req.contentLength;
  if (length !== null) head.push(Buffer.from(`Content-Length: ${length}\r\n`));
  head.push(Buffer.from("\r\n"));

  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, "127.0.0.1");
    const finish = (r: RawResponse | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      const r = parseResponse(Buffer.concat(chunks), req.method === "HEAD");
      if (r?.complete) finish(r);
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      // A refused connection means the server is gone: that is for the caller to fail on. Any other
      // error (the server resetting a connection whose request it refused unread) ends in "close".
      if (err.code === "ECONNREFUSED") {
        clearTimeout(timer);
        reject(err);
      }
    });
    socket.on("close", () => finish(parseResponse(Buffer.concat(chunks), req.method === "HEAD")));
    // Only a request that lies about its length half-closes, so the server sees the end of a body it
    // is still waiting for.
    socket.write(Buffer.concat([...head, body]), () => {
      if (req.halfClose) socket.end();
    });
  });
}

/** The first final (non-1xx) response in `raw`, `complete` once its body is all there; undefined before its head is. */
export function parseResponse(raw: Buffer, head = false): (RawResponse & { complete: boolean }) | undefined {
  let rest = raw;
  for (;;) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) return undefined;
    const lines = rest.subarray(0, end).toString("latin1").split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
    if (!m) return undefined;
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(":");
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    rest = rest.subarray(end + 4);
    if (status >= 100 && status < 200) continue;
    if (head || status === 204 || status === 304) return { status, headers, body: Buffer.alloc(0), complete: true };
    if (/chunked/i.test(headers["transfer-encoding"] ?? "")) return { status, headers, ...dechunk(rest) };
    const length = headers["content-length"];
    if (length === undefined) return { status, headers, body: rest, complete: false };
    return { status, headers, body: rest.subarray(0, Number(length)), complete: rest.length >= Number(length) };
  }
}

function dechunk(raw: Buffer): { body: Buffer; complete: boolean } {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf("\r\n", at);
    if (eol < 0) return { body: Buffer.concat(out), complete: false };
    const size = parseInt(raw.subarray(at, eol).toString("latin1"), 16);
    if (!Number.isFinite(size)) return { body: Buffer.concat(out), complete: false };
    if (size === 0) return { body: Buffer.concat(out), complete: true };
    if (raw.length < eol + 2 + size + 2) return { body: Buffer.concat(out), complete: false };
    out.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}
