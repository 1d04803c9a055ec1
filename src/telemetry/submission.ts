/**
 * The root of a task's trace: the api's span for the submitting request, named
 * for the task (`invoke_agent {agent}`). Intake stores its context with the task,
 * so every attempt, on any planner and after any crash, is a child of it.
 *
 * A `traceparent` header on the request is linked, never adopted as the parent: the
 * header is client input, and as a parent it would let any client graft a task's spans
 * onto a trace it does not own (another task's, another tenant's). Every task starts a
 * trace of its own; the link lets a tracing backend jump from the caller's span to it.
 */
import { ROOT_CONTEXT, SpanKind, trace, type Link } from "@opentelemetry/api";
import { httpStatusOf } from "../errors";
import { Attr, contextFromTraceparent, inSpan } from "./spans";

/** Agent names as the API accepts them; anything else is left out of the span name. */
const AGENT_NAME = /^[a-z0-9][a-z0-9_-]{0,99}$/;

export interface Submitted {
  id: string;
  created: boolean;
  prompt_version: string;
}

export function traceSubmission<R extends Submitted>(incomingTraceparent: string | undefined, body: unknown, submit: () => Promise<R>): Promise<R> {
  const agent = (body as { agent?: unknown } | null | undefined)?.agent;
  const agentName = typeof agent === "string" && AGENT_NAME.test(agent) ? agent : undefined;
  const attributes = {
    [Attr.OPERATION]: "invoke_agent",
    ...(agentName !== undefined ? { [Attr.AGENT_NAME]: agentName } : {}),
    "http.request.method": "POST",
    "http.route": "/v1/tasks",
  };
  const name = agentName === undefined ? "invoke_agent" : `invoke_agent ${agentName}`;
  const caller = trace.getSpanContext(contextFromTraceparent(incomingTraceparent, ROOT_CONTEXT));
  const links: Link[] = caller === undefined ? [] : [{ context: caller, attributes: { "clawfleet.link": "http.traceparent" } }];
  return inSpan(name, { kind: SpanKind.SERVER, attributes, links, root: true }, ROOT_CONTEXT, async (span) => {
    let r: R;
    try {
      r = await submit();
    } catch (err) {
      span.setAttribute("http.response.status_code", httpStatusOf(err));
      throw err;
    }
    span.setAttributes({
      [Attr.TASK_ID]: r.id,
      [Attr.CONVERSATION_ID]: r.id,
      [Attr.PROMPT_VERSION]: r.prompt_version,
      [Attr.TASK_CREATED]: r.created,
      "http.response.status_code": 202,
    });
    return r;
  });
}
