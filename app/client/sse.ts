/**
 * A reader of `text/event-stream` (the WHATWG Server-Sent Events format) for
 * `GET /v1/tasks/{id}/events`: chunks in, whole events out, however the bytes
 * were split on the way.
 */

export interface SseEvent {
  /** The `id:` field, or undefined when the event carried none. */
  id: string | undefined;
  /** The `event:` field; "message" when absent. */
  event: string;
  data: string;
}

export class SseParser {
  private buffer = "";
  private id: string | undefined;
  private event = "";
  private data: string[] = [];

  /** The events that `chunk` completes. Comment lines (`: keep-alive`) are dropped. */
  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    for (let nl = this.buffer.search(/\r\n|\r|\n/); nl !== -1; nl = this.buffer.search(/\r\n|\r|\n/)) {
      // A lone \r at the end of a chunk may be the first half of \r\n: wait for the next chunk.
      if (this.buffer[nl] === "\r" && nl === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + (this.buffer.startsWith("\r\n", nl) ? 2 : 1));
      const e = this.line(line);
      if (e) out.push(e);
    }
    return out;
  }

  private line(line: string): SseEvent | undefined {
    if (line === "") {
      if (this.data.length === 0 && this.event === "") return undefined;
      const e = { id: this.id, event: this.event || "message", data: this.data.join("\n") };
      this.id = undefined;
      this.event = "";
      this.data = [];
      return e;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + (line[colon + 1] === " " ? 2 : 1));
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
    return undefined;
  }
}
