/**
 * Trace context over Moleculer calls: a broker middleware that puts the caller's
 * active span into `ctx.meta.traceparent` (W3C form) when a call leaves for
 * another node, and makes it the active context around the handler on the node
 * that serves the call. Moleculer's own tracing stays off: this carries context
 * only; the spans are Clawfleet's (see spans.ts).
 *
 * Local calls need nothing: Node's async context already flows from caller to handler.
 */
import { context, ROOT_CONTEXT } from "@opentelemetry/api";
import type { ActionHandler, Context, Middleware, ServiceBroker } from "moleculer";
import { contextFromTraceparent, traceparentOf } from "./spans";

/** The meta key the context travels in. */
export const TRACEPARENT_META = "traceparent";

export function traceContextMiddleware(): Middleware {
  let localNodeId: string | undefined;
  return {
    created(broker: ServiceBroker) {
      localNodeId = broker.nodeID;
    },
    remoteAction(next: ActionHandler) {
      return function injectTraceparent(this: unknown, ctx: Context) {
        const traceparent = traceparentOf();
        if (traceparent !== undefined) (ctx.meta as Record<string, unknown>)[TRACEPARENT_META] = traceparent;
        return next.call(this, ctx) as unknown;
      };
    },
    localAction(next: ActionHandler) {
      return function extractTraceparent(this: unknown, ctx: Context) {
        const traceparent = (ctx.meta as Record<string, unknown> | undefined)?.[TRACEPARENT_META];
        if (ctx.nodeID === localNodeId || typeof traceparent !== "string") return next.call(this, ctx) as unknown;
        return context.with(contextFromTraceparent(traceparent, ROOT_CONTEXT), () => next.call(this, ctx) as unknown);
      };
    },
  };
}
