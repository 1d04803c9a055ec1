/**
 * The simulator's record of the `/v1/messages` requests it received
 * (`GET /_sim/requests`), so a test or a drill can count model calls at the
 * model: which task (`metadata.user_id`, the gateway sends the task id) asked
 * for which step of its agent loop, and when it arrived. Crash tests use it to
 * prove that no checkpointed LLM step was requested again after its checkpoint.
 *
 * Bounded: the oldest entries are dropped past `limit`, so a long load test
 * cannot grow the simulator without end.
 */
import type { MessagesRequest } from "./request";

export interface SimRequestRecord {
  /** Arrival time, epoch ms (before latency, rate limits or injected failures). */
  at: number;
  /** `metadata.user_id` of the request, or null. */
  user_id: string | null;
  model: string;
  /**
   * The agent loop's step number of this call: 1 + assistant messages + tool_result
   * blocks in the request (each earlier model turn and each earlier tool result is one step).
   * For a tiered agent, whose conversation starts at step 2 after its classification,
   * the step is `turn + 1`.
   */
  turn: number;
  /**
   * Tools offered with the request. Tells apart a call that is not part of the agent's
   * conversation (a tiered agent's classification, step 1, offers none) from the
   * conversation's first turn, which has the same `turn`.
   */
  tools: number;
  /** Whether the rate limits admitted it (false: answered 429); set once admission is decided. */
  admitted?: boolean;
  /** When the client closed the connection before the answer was sent (epoch ms): the call was aborted. */
  aborted_at?: number;
}

/** Entries kept by default: a few hours of a busy load test. */
export const DEFAULT_REQUEST_LOG_LIMIT = 200_000;

/** The step number of the loop iteration that sent `r`; see `SimRequestRecord.turn`. */
export function turnOf(r: Pick<MessagesRequest, "messages">): number {
  let turn = 1;
  for (const m of r.messages) {
    if (m.role === "assistant") turn += 1;
    else if (typeof m.content !== "string") turn += m.content.filter((b) => b.type === "tool_result").length;
  }
  return turn;
}

export class RequestLog {
  /** A ring: `entries[(start + i) % limit]` is the i-th oldest entry kept. */
  private entries: SimRequestRecord[] = [];
  private start = 0;

  constructor(private readonly limit = DEFAULT_REQUEST_LOG_LIMIT) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`request log limit must be a positive integer, got ${limit}`);
  }

  /** Returns the entry, so the caller can note how admission went. */
  record(r: MessagesRequest, at = Date.now()): SimRequestRecord {
    const userId = r.metadata?.user_id;
    const entry: SimRequestRecord = { at, user_id: typeof userId === "string" ? userId : null, model: r.model, turn: turnOf(r), tools: r.tools?.length ?? 0 };
    if (this.entries.length < this.limit) {
      this.entries.push(entry);
      return entry;
    }
    this.entries[this.start] = entry;
    this.start = (this.start + 1) % this.limit;
    return entry;
  }

  /** Oldest first. */
  snapshot(): SimRequestRecord[] {
    return [...this.entries.slice(this.start), ...this.entries.slice(0, this.start)];
  }

  reset(): void {
    this.entries = [];
    this.start = 0;
  }
}
