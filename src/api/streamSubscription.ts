/**
 * The api's subscription to the task lifecycle events (`clawfleet.task.*`), held only while it serves
 * an event stream (`GET /v1/tasks/{id}/events`, taskStream.ts), and for a while after the last one closed.
 *
 * The events only tell an open stream to look again, so an api with no stream open has no use for them.
 * Subscribed all the time, every api replica would still be sent every transition of every task (a
 * dozen a task, one per step) over the transporter, each decoded there and dropped. Moleculer sends an
 * event only to the nodes that list a handler for it, so the handler lives in a service of its own,
 * created when the first stream opens and destroyed once none has been open for `lingerMs`.
 *
 * A node learns of a new service from the node's INFO packet, which Moleculer sends up to a second after
 * the change. Until then the other nodes' events do not come here: for `announceMs` after the
 * subscription is made, every open stream looks again every `announcePollMs`, so a stream opened on an
 * idle api shows the first steps that soon rather than at its slow backstop poll.
 */
import { randomUUID } from "node:crypto";
import type { Context, Service, ServiceBroker } from "moleculer";
import { TASK_EVENTS_WILDCARD } from "../contracts";
import type { StreamHub, StreamPresence } from "./taskStream";

export interface StreamSubscriptionOptions {
  /** How long the subscription outlives the last stream (creating and destroying it is announced to every node). @default 60000 */
  lingerMs?: number;
  /** How long after subscribing the other nodes may not yet send the events here. @default 2500 */
  announceMs?: number;
  /** How often the open streams look again meanwhile. @default 100 */
  announcePollMs?: number;
  /** Told when the service could not be created or destroyed (the streams still poll). */
  onError?(err: unknown, action: "subscribe" | "unsubscribe"): void;
}

type Broker = Pick<ServiceBroker, "createService" | "destroyService">;

export class StreamSubscription implements StreamPresence {
  private service: Service | undefined;
  private open = false;
  private stopped = false;
  private linger: NodeJS.Timeout | undefined;
  private announce: NodeJS.Timeout | undefined;
  /** Creations and destructions in the order they were asked for. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly broker: Broker,
    /** The streams the events poke; it tells this subscription when the first opens and the last closes. */
    private readonly hub: StreamHub,
    private readonly opts: StreamSubscriptionOptions = {},
  ) {}

  /** Whether the events are subscribed to now (for tests and the operator's view). */
  get subscribed(): boolean {
    return this.service !== undefined;
  }

  /** The first stream opened. */
  watching(): void {
    this.open = true;
    clearTimeout(this.linger);
    this.linger = undefined;
    if (this.stopped || this.service) return;
    this.enqueue("subscribe", async () => {
      if (this.service || !this.open || this.stopped) return;
      const hub = this.hub;
      this.service = this.broker.createService({
        // One name per process: its own event group, so every api replica hears every task's events.
        name: `api-streams-${randomUUID()}`,
        events: {
          [TASK_EVENTS_WILDCARD](ctx: Context<{ task_id?: unknown }>) {
            if (typeof ctx.params.task_id === "string") hub.notify(ctx.params.task_id);
          },
        },
      });
      this.pollWhileAnnounced();
    });
  }

  /** The last stream closed. */
  idle(): void {
    this.open = false;
    clearTimeout(this.linger);
    this.linger = setTimeout(() => {
      this.linger = undefined;
      if (!this.open) this.enqueue("unsubscribe", () => this.unsubscribe());
    }, this.opts.lingerMs ?? 60_000);
    this.linger.unref();
  }

  /** The api is stopping: no timer is left behind, and no service is made any more (the broker stops the one there is). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.linger);
    clearInterval(this.announce);
    this.linger = this.announce = undefined;
  }

  private async unsubscribe(): Promise<void> {
    const service = this.service;
    if (!service || this.open) return;
    this.service = undefined;
    clearInterval(this.announce);
    this.announce = undefined;
    if (!this.stopped) await this.broker.destroyService(service);
  }

  private pollWhileAnnounced(): void {
    const until = Date.now() + (this.opts.announceMs ?? 2_500);
    clearInterval(this.announce);
    this.announce = setInterval(() => {
      this.hub.pokeAll();
      if (Date.now() >= until) {
        clearInterval(this.announce);
        this.announce = undefined;
      }
    }, this.opts.announcePollMs ?? 100);
    this.announce.unref();
  }

  private enqueue(action: "subscribe" | "unsubscribe", step: () => Promise<void>): void {
    this.chain = this.chain.then(step).catch((err: unknown) => this.opts.onError?.(err, action));
  }
}
