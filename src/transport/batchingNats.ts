/**
 * Moleculer's NATS transporter, with the packets a node sends in one turn of its event loop written to
 * NATS together.
 *
 * nats.js writes what was published at the end of the current microtask queue. A planner or a checkpoint
 * role sends its packets from many callbacks in one turn of the loop (the answers of several calls, a
 * checkpoint's request, a step's event), so each went out in a socket write of its own, and woke the NATS
 * server for each. Here the packets are held until the loop's check phase (`setImmediate`), then published
 * in the order they were sent: one write for the turn, and the server reads them in one go.
 *
 * What a packet waits: the rest of the turn it was sent in. On an idle node that is at once; on a busy one,
 * the callbacks still due in that turn, which the write it saves would otherwise have interrupted.
 * Nothing else changes: Moleculer's `send` never waited for the write (a v2 client's publish is buffered),
 * packets keep their order, and a node that disconnects publishes what it holds before it flushes and
 * closes, so its last replies and its DISCONNECT still go out. A packet nats.js would refuse at once (its
 * connection closed, a payload over the server's limit) is not held: it goes through Moleculer's own `send`,
 * and its sender gets the error as before. One refused later, its connection closed within the turn, is
 * logged and dropped, as a packet in flight is when the connection drops: the in-flight recovery
 * (src/transport/recovery.ts) fails the calls it belonged to.
 */
import { Transporters } from "moleculer";

/** The parts of the base transporter (and of its nats.js v2 client) this uses; Moleculer's typings leave them out. */
interface NatsInternals {
  client: {
    publish(topic: string, data: Buffer): void;
    isClosed(): boolean;
    isDraining(): boolean;
    readonly info?: { max_payload: number };
  } | null;
  useLegacy: boolean;
  logger: { warn(...args: unknown[]): void };
}

/** A publish nats.js would refuse at once: Moleculer's own `send` throws it to the sender, so it goes that way. */
function refused(client: NonNullable<NatsInternals["client"]>, data: Buffer): boolean {
  return client.isClosed() || client.isDraining() || (client.info !== undefined && data.length > client.info.max_payload);
}

export class BatchingNatsTransporter extends Transporters.NATS {
  private held: Array<[topic: string, data: Buffer]> = [];
  private scheduled = false;

  private get internals(): NatsInternals {
    return this as unknown as NatsInternals;
  }

  override send(topic: string, data: Buffer, meta: Record<string, unknown>): Promise<void> {
    const { client, useLegacy } = this.internals;
    // A nats.js v1 client acknowledges each publish: left as Moleculer sends it. So is a packet nats.js would
    // refuse (a closed connection, a payload over the server's limit): its error reaches the sender, not a later turn.
    if (useLegacy || client === null || refused(client, data)) return super.send(topic, data, meta);
    this.held.push([topic, data]);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.publishHeld);
    }
    return Promise.resolve();
  }

  /** Publishes the held packets, in the order they were sent; nats.js writes them in one go. */
  readonly publishHeld = (): void => {
    this.scheduled = false;
    const held = this.held;
    if (held.length === 0) return;
    this.held = [];
    const { client, logger } = this.internals;
    if (client === null) return;
    try {
      for (const [topic, data] of held) client.publish(topic, data);
    } catch (err) {
      // The connection closed since they were sent: lost as packets in flight are when it drops.
      logger.warn("NATS refused packets held for this turn of the event loop; they are dropped", err);
    }
  };

  override disconnect(): Promise<void> {
    this.publishHeld();
    return super.disconnect() as Promise<void>;
  }
}

/** The broker's transporter for `TRANSPORTER`: a NATS URL gets the batching one, any other is Moleculer's own. */
export function transporterFor(url: string | undefined): string | BatchingNatsTransporter | null {
  if (url === undefined) return null;
  // Moleculer's NATS transporter takes `{ url }` as it takes the URL alone.
  return url.startsWith("nats://") ? new BatchingNatsTransporter({ url }) : url;
}
