/**
 * The api's subscription to the task lifecycle events (`clawfleet.task.*`), held only while it serves
 * an event stream (`GET /v1/tasks/{id}/events`, taskStream.ts), and for a while after the last one closed.
 *
 * The events only tell an open stream to look again, so an api with no stream open has no use for them.
 * Subscribed all the time, every api replica would still be sent every transition of every task (a
 * dozen a task, one per step) over the transporter, each decoded there and dropped. Moleculer sends an
 * event only to the nodes that list a handler for it, so the handler lives in a service of its own,
 * created when the first stream opens and destroyed once none has been open for `lingerMs`. Its name
 * is this process's for good: Moleculer never forgets an event group it has seen, so a new name for
 * every subscription would leave one more empty group behind, on every node, each time.
 *
 * Events emitted before the service is registered here, and, from other nodes, before they have
 * heard of it, do not come. So once it is registered every open stream looks again; in a cluster this
 * node then announces its services at once (Moleculer would do it a second later; it still does), and
 * the open streams look again `announcePokesMs` after that, by when the other nodes have the news.
 * A node that missed both announcements leaves its events to the streams' slow backstop poll.
 */
import { randomUUID } from "node:crypto";
import type { Context, Service, ServiceBroker } from "moleculer";
import { TASK_EVENTS_WILDCARD } from "../contracts";
import type { StreamHub, StreamPresence } from "./taskStream";

export interface StreamSubscriptionOptions {
  /** How long the subscription outlives the last stream (creating and destroying it is announced to every node). @default 60000 */
  lingerMs?: number;
  /** When, after announcing the subscription, the open streams look again (ms). @default [50, 250, 1000] */
  announcePokesMs?: readonly number[];
  /** How long the new service may take to be registered here before the subscription counts as failed. @default 10000 */
  startTimeoutMs?: number;
  /** Told when the service could not be created or destroyed (the streams still poll); it is tried again when a stream next opens with none open before it. */
  onError?(err: unknown, action: "subscribe" | "unsubscribe"): void;
}

type Broker = Pick<ServiceBroker, "createService" | "destroyService" | "waitForServices" | "transit" | "registry">;

/** Moleculer's discoverer sends this node's INFO packet; its typings leave it off the registry. */
type Discoverer = { sendLocalNodeInfo(nodeID?: string): Promise<void> };

export class StreamSubscription implements StreamPresence {
  /** One name, and so one event group, for every subscription this process makes. */
  private readonly name = `api-streams-${randomUUID()}`;
  private service: Service | undefined;
  private open = false;
  private stopped = false;
  private linger: NodeJS.Timeout | undefined;
  private readonly pokes = new Set<NodeJS.Timeout>();
  /** Creations and destructions in the order they were asked for. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly broker: Broker,
    /** The streams the events poke; it tells this subscription when the first opens and the last closes. */
    private readonly hub: StreamHub,
    private readonly opts: StreamSubscriptionOptions = {},
  ) {}

  /** Whether the events are subscribed to now. */
  get subscribed(): boolean {
    return this.service !== undefined;
  }

  /** The first stream opened. */
  watching(): void {
    this.open = true;
    clearTimeout(this.linger);
    this.linger = undefined;
    if (this.stopped || this.service) return;
    this.enqueue("subscribe", () => this.subscribe());
  }

  /** The last stream closed. */
  idle(): void {
    this.open = false;
    if (this.stopped) return;
    clearTimeout(this.linger);
    this.linger = setTimeout(() => {
      this.linger = undefined;
      if (!this.open) this.enqueue("unsubscribe", () => this.unsubscribe());
    }, this.opts.lingerMs ?? 60_000);
    this.linger.unref();
  }

  /** The api is stopping: no timer is left behind, nothing is subscribed any more, and the service there is goes. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.linger);
    this.linger = undefined;
    this.clearPokes();
    const service = this.service;
    this.service = undefined;
    // The broker may be stopping it too: a service stopped twice is stopped once.
    if (service) this.chain = this.chain.then(() => this.broker.destroyService(service)).catch(() => undefined);
  }

  private async subscribe(): Promise<void> {
    if (this.service || !this.open || this.stopped) return;
    const hub = this.hub;
    const service = this.broker.createService({
      name: this.name,
      events: {
        [TASK_EVENTS_WILDCARD](ctx: Context<{ task_id?: unknown }>) {
          if (typeof ctx.params.task_id === "string") hub.notify(ctx.params.task_id);
        },
      },
    });
    this.service = service;
    try {
      // Registered here: from now on this node's own events reach it.
      await this.broker.waitForServices(this.name, this.opts.startTimeoutMs ?? 10_000, 10);
    } catch (err) {
      this.service = undefined;
      await this.broker.destroyService(service).catch(() => undefined);
      throw err;
    }
    if (this.stopped) return;
    this.hub.pokeAll();
    const discoverer = (this.broker.registry as unknown as { discoverer?: Discoverer }).discoverer;
    if (!this.broker.transit || !discoverer) return;
    await discoverer.sendLocalNodeInfo();
    for (const ms of this.opts.announcePokesMs ?? [50, 250, 1000]) {
      const t = setTimeout(() => {
        this.pokes.delete(t);
        this.hub.pokeAll();
      }, ms);
      t.unref();
      this.pokes.add(t);
    }
  }

  private async unsubscribe(): Promise<void> {
    const service = this.service;
    if (!service || this.open || this.stopped) return;
    this.service = undefined;
    this.clearPokes();
    await this.broker.destroyService(service);
  }

  private clearPokes(): void {
    for (const t of this.pokes) clearTimeout(t);
    this.pokes.clear();
  }

  private enqueue(action: "subscribe" | "unsubscribe", step: () => Promise<void>): void {
    this.chain = this.chain.then(step).catch((err: unknown) => this.opts.onError?.(err, action));
  }
}
