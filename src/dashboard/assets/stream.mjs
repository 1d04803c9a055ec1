/* global EventSource */
// A task's live events (GET /v1/tasks/{id}/events, Server-Sent Events), resumed from an event id.
//
// Without a key the browser's EventSource does the work (and resumes by itself with Last-Event-ID).
// EventSource cannot send an Authorization header, and the route takes the key only there, so with a
// key the stream is read with fetch() and parsed here, resuming with ?last_event_id= after a cut.

import { ApiError, apiKey, authHeaders } from "./api.mjs";

const EVENTS = ["step", "awaiting_approval", "succeeded", "failed", "cancelled", "reset"];
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const RETRY_MS = 1000;

/**
 * Calls `onEvent(name, data)` for each event after `fromId` (null: from the start) until a terminal event
 * or `signal` aborts; `onError(err)` for a refusal that ends the stream. Returns nothing: abort to stop.
 */
export function followTask(taskId, fromId, { onEvent, onError, signal }) {
  const path = `/v1/tasks/${encodeURIComponent(taskId)}/events`;
  if (apiKey()) void readWithFetch(path, fromId, onEvent, onError, signal);
  else readWithEventSource(path, fromId, onEvent, signal);
}

function readWithEventSource(path, fromId, onEvent, signal) {
  const source = new EventSource(fromId === null ? path : `${path}?last_event_id=${fromId}`);
  const close = () => source.close();
  signal.addEventListener("abort", close, { once: true });
  for (const name of EVENTS) {
    source.addEventListener(name, (e) => {
      if (TERMINAL.has(name)) close();
      onEvent(name, JSON.parse(e.data));
    });
  }
}

async function readWithFetch(path, fromId, onEvent, onError, signal) {
  let last = fromId;
  while (!signal.aborted) {
    let ended = false;
    try {
      const url = last === null ? path : `${path}?last_event_id=${last}`;
      const res = await fetch(url, { headers: { Accept: "text/event-stream", ...authHeaders() }, signal, cache: "no-store" });
      if (!res.ok) {
        const body = await res.json().catch(() => null);
        const e = body && body.error;
        const err = new ApiError(res.status, e ? e.type : `http_${res.status}`, e ? e.message : res.statusText, e ? e.details : undefined);
        // A refusal (no key, no such task) will not change by asking again; a 503 may.
        if (res.status !== 503) return onError(err);
      } else {
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const frame = parseFrame(buf.slice(0, cut));
            buf = buf.slice(cut + 2);
            if (!frame) continue;
            if (frame.id !== null) last = frame.id;
            onEvent(frame.event, frame.data);
            if (TERMINAL.has(frame.event)) ended = true;
          }
          if (ended) {
            await reader.cancel();
            return;
          }
        }
      }
    } catch {
      // Aborted by the page, or a cut connection: the latter resumes from the last id seen.
      if (signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}

/** One SSE frame; comment-only frames (keep-alives) are null. */
function parseFrame(text) {
  let id = null;
  let event = "message";
  const data = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "id") id = value;
    else if (name === "event") event = value;
    else if (name === "data") data.push(value);
  }
  if (data.length === 0) return null;
  return { id, event, data: JSON.parse(data.join("\n")) };
}
