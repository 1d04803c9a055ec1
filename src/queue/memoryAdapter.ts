/**
 * The in-process queue of embedded mode, behind the same @moleculer/channels API
 * as the Redis Streams adapter of distributed mode (`broker.sendToChannel`, the
 * `channels` block of a service). The library's own Fake adapter rides on broker
 * events: it drops messages once its bulkhead queue is full and never retries, so
 * it cannot carry wake-ups that must not be lost.
 *
 * Semantics, chosen to match the Redis adapter as configured in `channels.ts`:
 * - Each channel is one unbounded FIFO log. Every consumer group reads the whole
 *   log once; within a group, subscribers compete (round-robin among those below
 *   their `maxInFlight`).
 * - A message stays in the log until every group of its channel has taken it. A
 *   group seen for the first time starts at the oldest message still kept, so what
 *   was published before anyone subscribed is delivered (Redis: `startID: "0"`).
 * - A group whose subscribers all left keeps its place and its backlog until one
 *   comes back.
 * - A handler that throws has its message delivered again after `retryDelayMs`,
 *   up to `maxRetries` deliveries in all (the count the Redis, NATS and AMQP
 *   adapters apply); then it goes to the dead-letter channel when enabled, or is
 *   dropped with an error log.
 * - Payloads go through the broker's serializer (JSON), as on the wire: a handler
 *   never shares an object with the publisher, and what does not serialize fails
 *   here exactly as it would in distributed mode.
 * - Publishing before the adapter is connected rejects, as with Redis: the
 *   middleware connects after every service's `started()` has run, so a wake-up
 *   sent from `started()` fails in both modes alike.
 */
import { Adapters } from "@moleculer/channels";
import { Errors, type GenericObject, type ServiceBroker } from "moleculer";
import { messageOf } from "../errors";

const BaseAdapter = Adapters.Base;
type Channel = Parameters<InstanceType<typeof BaseAdapter>["subscribe"]>[0];

/** Header and metric names of @moleculer/channels (its constants module is not public). */
const HEADER_ORIGINAL_ID = "x-original-id";
const HEADER_ORIGINAL_CHANNEL = "x-original-channel";
const HEADER_ORIGINAL_GROUP = "x-original-group";
const METRIC_ERRORS = "moleculer.channels.messages.errors.total";
const METRIC_RETRIES = "moleculer.channels.messages.retries.total";
const METRIC_DEAD_LETTERING = "moleculer.channels.messages.deadLettering.total";

export interface MemoryAdapterOptions {
  /** Channel name prefix. @default the broker's namespace */
  prefix?: string;
  /** Deliveries of a failing message before it is dead-lettered or dropped; a channel's own setting wins. @default 3 */
  maxRetries?: number;
  /** Messages one subscriber handles at once; a channel's own setting wins. @default 1 */
  maxInFlight?: number;
  deadLettering?: { enabled: boolean; queueName: string };
  /** Messages the dead-letter topic keeps; older ones are dropped. @default unbounded */
  deadLetterMaxLen?: number;
  /** Pause before a failed message is delivered again, so a persistent failure does not spin. @default 1000 */
  retryDelayMs?: number;
  /** A Moleculer serializer name. @default "JSON" */
  serializer?: string;
}

export interface QueueDepth {
  /** Messages not yet handed to a consumer, retries included. */
  waiting: number;
  /** Messages a consumer is handling now. */
  inFlight: number;
}

/** The second argument a channel handler receives (`raw`). */
export interface MemoryRawMessage {
  id: string;
  payload: unknown;
  headers: Record<string, unknown> | undefined;
  /** Failed deliveries of this message before this one. */
  redelivered: number;
}

export interface MemoryPublishOptions {
  headers?: Record<string, unknown>;
  /** The payload is already serialized (Buffer or string), as with the Redis adapter's `raw`. */
  raw?: boolean;
}

interface Envelope {
  id: string;
  body: Buffer;
  headers: Record<string, unknown> | undefined;
  /** When it was published (ms since the epoch): the queue's lag, as a Redis stream id's time gives it. */
  publishedAt: number;
}

interface Delivery {
  envelope: Envelope;
  failures: number;
}

type Handler = (payload: unknown, raw: MemoryRawMessage) => unknown;

/** Array-backed FIFO with O(1) amortized shift and indexed reads. */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  at(index: number): T | undefined {
    return this.items[this.head + index];
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

interface Subscriber {
  chan: Channel;
  handler: Handler;
  group: Group;
  topic: Topic;
  maxInFlight: number;
  maxDeliveries: number;
  deadLetterQueue: string | undefined;
  inFlight: number;
  running: Set<Promise<void>>;
  stopping: Promise<void> | undefined;
}

interface Group {
  name: string;
  /** Sequence number of the next log entry this group takes. */
  cursor: number;
  retries: Fifo<Delivery>;
  /** Retries waiting out `retryDelayMs`. */
  delayed: number;
  subscribers: Subscriber[];
  nextSubscriber: number;
  inFlight: number;
}

class Topic {
  readonly groups = new Map<string, Group>();
  readonly log = new Fifo<Envelope>();
  /** Sequence number of `log.at(0)`. */
  firstSeq = 0;
  scheduled = false;

  constructor(readonly name: string) {}

  get nextSeq(): number {
    return this.firstSeq + this.log.length;
  }

  /** Adds a message; past `maxLen` the oldest go, read or not (Redis' XADD MAXLEN), and groups skip them. */
  append(body: Buffer, headers: Record<string, unknown> | undefined, maxLen = Infinity): void {
    this.log.push({ id: String(this.nextSeq), body, headers, publishedAt: Date.now() });
    while (this.log.length > maxLen) {
      this.log.shift();
      this.firstSeq++;
    }
    for (const g of this.groups.values()) g.cursor = Math.max(g.cursor, this.firstSeq);
  }

  /** Forgets what every group has taken. With no group yet, everything is kept for the first one. */
  trim(): void {
    if (this.groups.size === 0) return;
    let min = Infinity;
    for (const g of this.groups.values()) min = Math.min(min, g.cursor);
    while (this.firstSeq < min && this.log.length > 0) {
      this.log.shift();
      this.firstSeq++;
    }
  }
}

export class MemoryAdapter extends BaseAdapter {
  private readonly topics = new Map<string, Topic>();
  private readonly subscribers = new Map<string, Subscriber>();
  private readonly immediates = new Set<NodeJS.Immediate>();
  private readonly pendingRetries = new Map<NodeJS.Timeout, { group: Group; topic: Topic; delivery: Delivery }>();
  private readonly retryDelayMs: number;
  private readonly deadLetterMaxLen: number;

  constructor(opts: MemoryAdapterOptions = {}) {
    const { retryDelayMs, deadLetterMaxLen, ...base } = opts;
    super(base);
    this.retryDelayMs = retryDelayMs ?? 1000;
    this.deadLetterMaxLen = deadLetterMaxLen ?? Infinity;
  }

  override async connect(): Promise<void> {
    this.connected = true;
    for (const topic of this.topics.values()) this.schedule(topic);
  }

  /** Waits for every handler still running; messages not yet delivered stay queued in this instance. */
  override async disconnect(): Promise<void> {
    this.connected = false;
    await Promise.all([...this.subscribers.values()].map((s) => this.unsubscribe(s.chan)));
    for (const [timer, { group, delivery }] of this.pendingRetries) {
      clearTimeout(timer);
      group.delayed--;
      group.retries.push(delivery);
    }
    this.pendingRetries.clear();
    for (const immediate of this.immediates) clearImmediate(immediate);
    this.immediates.clear();
    for (const topic of this.topics.values()) topic.scheduled = false;
  }

  override async subscribe(chan: Channel): Promise<void> {
    if (this.subscribers.has(chan.id)) throw new Errors.MoleculerError(`channel consumer ${chan.id} is already subscribed`);
    chan.maxInFlight ??= this.opts.maxInFlight;
    chan.maxRetries ??= this.opts.maxRetries;
    chan.deadLettering = { ...this.opts.deadLettering, ...(chan.deadLettering ?? {}) };
    if (chan.deadLettering.enabled) chan.deadLettering.queueName = this.addPrefixTopic(chan.deadLettering.queueName);

    const topic = this.topic(chan.name);
    let group = topic.groups.get(chan.group);
    if (!group) {
      group = { name: chan.group, cursor: topic.firstSeq, retries: new Fifo(), delayed: 0, subscribers: [], nextSubscriber: 0, inFlight: 0 };
      topic.groups.set(chan.group, group);
    }
    this.initChannelActiveMessages(chan.id);
    const sub: Subscriber = {
      chan,
      handler: chan.handler as Handler,
      group,
      topic,
      maxInFlight: Math.max(1, chan.maxInFlight),
      maxDeliveries: Math.max(1, chan.maxRetries),
      deadLetterQueue: chan.deadLettering.enabled ? chan.deadLettering.queueName : undefined,
      inFlight: 0,
      running: new Set(),
      stopping: undefined,
    };
    group.subscribers.push(sub);
    this.subscribers.set(chan.id, sub);
    this.logger.debug(`Subscribed to '${chan.name}' with group '${chan.group}'`, chan.id);
    this.schedule(topic);
  }

  /** Stops handing this consumer messages, then waits for the ones it is handling. */
  override async unsubscribe(chan: Channel): Promise<void> {
    const sub = this.subscribers.get(chan.id);
    if (!sub) return;
    sub.stopping ??= this.drain(sub);
    return sub.stopping;
  }

  override async publish(channelName: string, payload: unknown, opts?: MemoryPublishOptions | null): Promise<void> {
    if (!this.connected) {
      throw new Errors.MoleculerRetryableError("Adapter not yet connected. Skipping publishing.", 503, "CHANNEL_ADAPTER_NOT_CONNECTED", {
        channel: channelName,
      });
    }
    const body = opts?.raw ? Buffer.from(payload as Buffer | string) : this.serializer.serialize(payload as GenericObject);
    const topic = this.topic(channelName);
    topic.append(body, opts?.headers);
    this.schedule(topic);
  }

  /**
   * Backlog of a channel (name without prefix) for one consumer group, or summed
   * over its groups. A channel or group nobody subscribed to yet reports what it
   * would receive on subscribing.
   */
  depth(channelName: string, group?: string): QueueDepth {
    const topic = this.topics.get(this.addPrefixTopic(channelName));
    if (!topic) return { waiting: 0, inFlight: 0 };
    const ofGroup = (g: Group): QueueDepth => ({ waiting: topic.nextSeq - g.cursor + g.retries.length + g.delayed, inFlight: g.inFlight });
    if (group !== undefined) {
      const g = topic.groups.get(group);
      return g ? ofGroup(g) : { waiting: topic.log.length, inFlight: 0 };
    }
    if (topic.groups.size === 0) return { waiting: topic.log.length, inFlight: 0 };
    const total: QueueDepth = { waiting: 0, inFlight: 0 };
    for (const g of topic.groups.values()) {
      const d = ofGroup(g);
      total.waiting += d.waiting;
      total.inFlight += d.inFlight;
    }
    return total;
  }

  /**
   * Age in seconds of the oldest message of a channel (name without prefix) that a consumer group has not
   * been handed yet, retries included as in `depth`; 0 when none waits. A group nobody subscribed to yet
   * would start at the oldest message kept.
   */
  lagSeconds(channelName: string, group: string, now: number = Date.now()): number {
    const topic = this.topics.get(this.addPrefixTopic(channelName));
    if (!topic) return 0;
    const g = topic.groups.get(group);
    let oldest = topic.log.at(g ? g.cursor - topic.firstSeq : 0)?.publishedAt ?? Infinity;
    if (g) {
      for (let i = 0; i < g.retries.length; i++) oldest = Math.min(oldest, g.retries.at(i)?.envelope.publishedAt ?? Infinity);
      for (const r of this.pendingRetries.values()) if (r.group === g) oldest = Math.min(oldest, r.delivery.envelope.publishedAt);
    }
    return Number.isFinite(oldest) ? Math.max(0, (now - oldest) / 1000) : 0;
  }

  override parseMessageHeaders(raw: MemoryRawMessage | undefined): Record<string, unknown> {
    return raw?.headers ?? {};
  }

  private topic(name: string): Topic {
    let topic = this.topics.get(name);
    if (!topic) this.topics.set(name, (topic = new Topic(name)));
    return topic;
  }

  /**
   * Dispatch runs on a later turn (setImmediate), never inside `publish`: the
   * publisher does not run consumer code on its stack, and a long burst yields to
   * I/O between rounds.
   */
  private schedule(topic: Topic): void {
    if (topic.scheduled || !this.connected) return;
    topic.scheduled = true;
    const immediate = setImmediate(() => {
      this.immediates.delete(immediate);
      topic.scheduled = false;
      for (const group of topic.groups.values()) this.dispatch(topic, group);
    });
    this.immediates.add(immediate);
  }

  private dispatch(topic: Topic, group: Group): void {
    for (;;) {
      const sub = this.nextFreeSubscriber(group);
      if (!sub) return;
      const delivery = this.take(topic, group);
      if (!delivery) return;
      this.deliver(sub, delivery);
    }
  }

  private nextFreeSubscriber(group: Group): Subscriber | undefined {
    const n = group.subscribers.length;
    for (let i = 0; i < n; i++) {
      const index = (group.nextSubscriber + i) % n;
      const sub = group.subscribers[index];
      if (sub && sub.stopping === undefined && sub.inFlight < sub.maxInFlight) {
        group.nextSubscriber = (index + 1) % n;
        return sub;
      }
    }
    return undefined;
  }

  private take(topic: Topic, group: Group): Delivery | undefined {
    const retry = group.retries.shift();
    if (retry) return retry;
    if (group.cursor >= topic.nextSeq) return undefined;
    const envelope = topic.log.at(group.cursor - topic.firstSeq);
    group.cursor++;
    topic.trim();
    return envelope && { envelope, failures: 0 };
  }

  private deliver(sub: Subscriber, delivery: Delivery): void {
    const { chan, group } = sub;
    const { envelope } = delivery;
    sub.inFlight++;
    group.inFlight++;
    this.addChannelActiveMessages(chan.id, [envelope.id]);
    const run = (async () => {
      let failure: unknown;
      let failed = false;
      try {
        const payload: unknown = this.serializer.deserialize(envelope.body);
        await sub.handler(payload, { id: envelope.id, payload, headers: envelope.headers, redelivered: delivery.failures });
      } catch (err) {
        failed = true;
        failure = err;
      }
      sub.inFlight--;
      group.inFlight--;
      this.removeChannelActiveMessages(chan.id, [envelope.id]);
      if (failed) this.failed(sub, delivery, failure);
      this.schedule(sub.topic);
    })();
    sub.running.add(run);
    void run.finally(() => sub.running.delete(run));
  }

  private failed(sub: Subscriber, delivery: Delivery, err: unknown): void {
    const { chan, group, topic } = sub;
    delivery.failures++;
    this.metricsIncrement(METRIC_ERRORS, chan);
    if (delivery.failures < sub.maxDeliveries) {
      this.logger.warn(
        `Message ${delivery.envelope.id} of '${chan.name}' failed in group '${chan.group}' (${delivery.failures}/${sub.maxDeliveries}): ${messageOf(err)}`,
      );
      this.metricsIncrement(METRIC_RETRIES, chan);
      this.retryLater(topic, group, delivery);
      return;
    }
    if (sub.deadLetterQueue !== undefined) {
      const dead = this.topic(sub.deadLetterQueue);
      dead.append(
        delivery.envelope.body,
        {
          ...delivery.envelope.headers,
          [HEADER_ORIGINAL_ID]: delivery.envelope.id,
          [HEADER_ORIGINAL_CHANNEL]: chan.name,
          [HEADER_ORIGINAL_GROUP]: chan.group,
        },
        this.deadLetterMaxLen,
      );
      this.metricsIncrement(METRIC_DEAD_LETTERING, chan);
      this.logger.warn(
        `Moved message ${delivery.envelope.id} of '${chan.name}' to '${sub.deadLetterQueue}' after ${delivery.failures} deliveries: ${messageOf(err)}`,
      );
      this.schedule(dead);
      return;
    }
    this.logger.error(`Dropped message ${delivery.envelope.id} of '${chan.name}' after ${delivery.failures} deliveries: ${messageOf(err)}`);
  }

  private retryLater(topic: Topic, group: Group, delivery: Delivery): void {
    if (this.retryDelayMs <= 0 || !this.connected) {
      group.retries.push(delivery);
      return;
    }
    group.delayed++;
    const timer = setTimeout(() => {
      this.pendingRetries.delete(timer);
      group.delayed--;
      group.retries.push(delivery);
      this.schedule(topic);
    }, this.retryDelayMs);
    this.pendingRetries.set(timer, { group, topic, delivery });
  }

  private async drain(sub: Subscriber): Promise<void> {
    sub.chan.unsubscribing = true;
    const { group } = sub;
    group.subscribers = group.subscribers.filter((s) => s !== sub);
    group.nextSubscriber = 0;
    while (sub.running.size > 0) await Promise.allSettled([...sub.running]);
    this.stopChannelActiveMessages(sub.chan.id);
    this.subscribers.delete(sub.chan.id);
    this.logger.debug(`Unsubscribed from '${sub.chan.name}' with group '${sub.chan.group}'`, sub.chan.id);
    // Whatever this consumer failed while draining goes to the group's remaining consumers.
    this.schedule(sub.topic);
  }
}

/** An adapter instance for `ChannelsMiddleware({ adapter })`. */
export function memoryAdapter(opts: MemoryAdapterOptions = {}): MemoryAdapter {
  return new MemoryAdapter(opts);
}

/** The broker's channel adapter if it is the in-process one (for queue-depth metrics). */
export function memoryAdapterOf(broker: ServiceBroker): MemoryAdapter | undefined {
  const adapter = (broker as unknown as { channelAdapter?: unknown }).channelAdapter;
  return adapter instanceof MemoryAdapter ? adapter : undefined;
}
