/**
 * Whether a @moleculer/channels consumer is subscribed and its connection is up,
 * read off the adapter instance (`broker.channelAdapter`). The library has no
 * public call for this; what is read here is the state every adapter keeps
 * (BaseAdapter: `connected`, and an active-message list per subscribed consumer
 * id) plus, for Redis Streams, the status of the subscription's own client, which
 * is what the blocking XREADGROUP loop runs on. Each field is checked before use,
 * so a library change shows up as "not subscribed: …" with the reason, never as
 * a crash or a silent "ready".
 */
import type { SubscriptionState } from "../health/watchdog";

interface AdapterShape {
  connected?: unknown;
  activeMessages?: unknown;
  clients?: unknown;
  addPrefixTopic?: unknown;
}

/** The consumer id @moleculer/channels gives a service's subscription (`<prefix>.<nodeID>.<service>.<prefix>.<channel>`). */
export function consumerId(adapter: unknown, nodeID: string, service: string, channel: string): string | undefined {
  const a = adapter as AdapterShape | undefined;
  if (typeof a?.addPrefixTopic !== "function") return undefined;
  const prefix = (topic: string) => String((a.addPrefixTopic as (t: string) => unknown).call(a, topic));
  return prefix(`${nodeID}.${service}.${prefix(channel)}`);
}

export function subscriptionState(adapter: unknown, id: string | undefined): SubscriptionState {
  const a = adapter as AdapterShape | undefined;
  if (a === undefined || a === null) return { active: false, detail: "no channel adapter on this broker" };
  if (a.connected !== true) return { active: false, detail: "channel adapter not connected" };
  if (id === undefined) return { active: false, detail: "consumer id unknown" };
  if (!(a.activeMessages instanceof Map) || !a.activeMessages.has(id)) return { active: false, detail: `no consumer ${id}` };
  if (a.clients instanceof Map) {
    // Redis Streams: one client per subscription; ioredis reports "ready" only while connected.
    const client = a.clients.get(id) as { status?: unknown } | undefined;
    if (client !== undefined && client.status !== "ready") return { active: false, detail: `redis connection ${String(client.status)}` };
  }
  return { active: true };
}
