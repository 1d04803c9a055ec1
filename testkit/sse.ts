/**
 * A Server-Sent Events reader for tests and benches: it parses frames as a
 * browser's EventSource does (an event is dispatched at its blank line, so a
 * connection cut mid-frame dispatches nothing of it) and lets the caller cut
 * the connection whenever it likes.
 */
export interface SseFrame {
  id?: string;
  event: string;
  data: string;
}

export interface SseReadOptions {
  lastEventId?: string;
  headers?: Record<string, string>;
  /** Told of each frame; answering false cuts the connection there. */
  onFrame(frame: SseFrame): boolean | void;
  /** Cuts the connection after this long, frames or not. */
  cutAfterMs?: number;
}

export interface SseReadResult {
  /** HTTP status of the answer (0: no answer, the connection failed). */
  status: number;
  /** How the read ended: the server closed the stream, the caller cut it, or the connection failed. */
  ended: "closed" | "cut" | "failed";
  /** The body, when the answer was not a stream (an error). */
  body?: string;
}

/** Parses complete frames out of `buffer`; answers them and what is left over. */
export function parseFrames(buffer: string): { frames: SseFrame[]; rest: string } {
  const frames: SseFrame[] = [];
  let rest = buffer.replace(/\r\n/g, "\n");
  for (let end = rest.indexOf("\n\n"); end !== -1; end = rest.indexOf("\n\n")) {
    const block = rest.slice(0, end);
    rest = rest.slice(end + 2);
    let id: string | undefined;
    let event = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length > 0) frames.push({ ...(id !== undefined ? { id } : {}), event, data: data.join("\n") });
  }
  return { frames, rest };
}

export async function readSse(url: string, opts: SseReadOptions): Promise<SseReadResult> {
  const controller = new AbortController();
  const timer = opts.cutAfterMs === undefined ? undefined : setTimeout(() => controller.abort(), opts.cutAfterMs);
  let cut = false;
  try {
    const headers: Record<string, string> = { Accept: "text/event-stream", ...(opts.headers ?? {}) };
    if (opts.lastEventId !== undefined) headers["Last-Event-ID"] = opts.lastEventId;
    let r: Response;
    try {
      r = await fetch(url, { headers, signal: controller.signal });
    } catch {
      return { status: 0, ended: controller.signal.aborted ? "cut" : "failed" };
    }
    if (!(r.headers.get("content-type") ?? "").startsWith("text/event-stream") || !r.body) {
      return { status: r.status, ended: "closed", body: await r.text().catch(() => "") };
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return { status: r.status, ended: "closed" };
        const parsed = parseFrames(buffer + decoder.decode(value, { stream: true }));
        buffer = parsed.rest;
        for (const frame of parsed.frames) {
          if (opts.onFrame(frame) === false) {
            cut = true;
            controller.abort();
            return { status: r.status, ended: "cut" };
          }
        }
      }
    } catch {
      return { status: r.status, ended: controller.signal.aborted || cut ? "cut" : "failed" };
    }
  } finally {
    if (timer) clearTimeout(timer);
  }
}
