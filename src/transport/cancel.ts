/**
 * Cancelling a call that is already on its way to another node. Moleculer 0.14
 * has no cancellation: once a request is sent, its caller can only wait. So a
 * cancellable call carries a call id in its `meta`; the caller stops waiting when
 * its signal aborts and broadcasts `CALL_CANCEL_EVENT` with that id, and the
 * service running the call (rate-gateway, executor) aborts what it does for it.
 * The broadcast is best effort: a cancel that is lost leaves the callee to finish
 * a call whose answer nobody reads, never a caller waiting.
 */
import { randomUUID } from "node:crypto";
import { messageOf } from "../errors";

export const CALL_CANCEL_EVENT = "clawfleet.call.cancel";

/** What a cancellable call needs of the broker. */
export interface CancellableBroker {
  call<T, P>(action: string, params: P, opts: { timeout?: number; meta: { callId: string } }): Promise<T>;
  broadcast(event: string, payload: unknown, groups: string[]): Promise<unknown> | void;
  getLogger(name: string): { warn(obj: unknown, msg?: string): void };
}

export interface CancellableCallOptions {
  /** Broker timeout of the call. @default 0 (none) */
  timeout?: number;
  /**
   * Stop waiting as soon as the signal aborts (rejecting with its reason). False: only ask the
   * callee to cancel, and keep waiting for its answer (a tool call that may have acted: the callee
   * decides whether it can stop, and its answer is the outcome to record).
   * @default true
   */
  abandon?: boolean;
  /** The services the cancel is broadcast to. */
  groups: string[];
}

/** `broker.call(action, params)` that `signal` can cancel, on this node and on the callee's. */
export function cancellableCall<T, P>(broker: CancellableBroker, action: string, params: P, signal: AbortSignal | undefined, opts: CancellableCallOptions): Promise<T> {
  const callId = randomUUID();
  const call = broker.call<T, P>(action, params, { ...(opts.timeout !== undefined ? { timeout: opts.timeout } : {}), meta: { callId } });
  if (!signal) return call;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      const sent = broker.broadcast(CALL_CANCEL_EVENT, { callId }, opts.groups);
      void Promise.resolve(sent).catch((err: unknown) =>
        broker.getLogger("transport").warn({ event: "call.cancel_failed", action, err: messageOf(err) }, "could not ask the callee to cancel"),
      );
      if (opts.abandon ?? true) reject(signal.reason as Error);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    call.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (err: Error) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/** The callee's side: one AbortController per call id it is running, aborted by a cancel for that id. */
export class CancelRegistry {
  private readonly calls = new Map<string, AbortController>();

  /** The signal for the call `callId` (from `ctx.meta`); `done()` forgets it. Without an id, a signal that never aborts. */
  open(callId: unknown): { signal: AbortSignal; done(): void } {
    const controller = new AbortController();
    if (typeof callId !== "string") return { signal: controller.signal, done: () => undefined };
    this.calls.set(callId, controller);
    return { signal: controller.signal, done: () => this.calls.delete(callId) };
  }

  /** Handles a `CALL_CANCEL_EVENT` payload; true if a call here was cancelled. */
  cancel(payload: unknown, reason: Error): boolean {
    const callId = (payload as { callId?: unknown } | null)?.callId;
    if (typeof callId !== "string") return false;
    const controller = this.calls.get(callId);
    if (!controller) return false;
    this.calls.delete(callId);
    controller.abort(reason);
    return true;
  }

  /** Calls running now. */
  get size(): number {
    return this.calls.size;
  }
}
