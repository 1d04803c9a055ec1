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
 * What a packet waits: until the loop's next check phase. On an idle node that is at once; on a busy one, it
 * is the callbacks still due in that turn, which the write it saves would otherwise have interrupted. A packet
 * sent from a `setImmediate` callback itself waits one more turn, its timers and I/O included.
 *
 * Nothing else changes: Moleculer's `send` never waited for the write (a v2 client's publish is buffered), and
 * the packets keep their order. A packet nats.js would refuse at once (its connection closed or draining, a
 * payload over the server's limit) is not held: it goes through Moleculer's own `send`, and its sender gets
 * the error as before. From a disconnect on, nothing is held: what is held is published first, and what is
 * sent after goes straight to nats.js, so a stopping node's last replies and its DISCONNECT go out before the
 * connection closes. A held packet refused when it is published is logged and dropped, and the packets
 * after it are still published. Only a reconnect in between can bring that about (to a server with a lower
 * payload limit), and the in-flight recovery that follows every reconnect fails the call it belonged to
 * (src/transport/recovery.ts).
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
  /** Set by `disconnect`, until the next `connect`: meanwhile, packets go to nats.js as they are sent. */
  private closing = false;

  private get internals(): NatsInternals {
    return this as unknown as NatsInternals;
  }

  override send(topic: string, data: Buffer, meta: Record<string, unknown>): Promise<void> {
    const { client, useLegacy } = this.internals;
    // A nats.js v1 client acknowledges each publish: left as Moleculer sends it. So is a packet nats.js would
    // refuse (a closed connection, a payload over the server's limit): its error reaches the sender, not a later turn.
    if (useLegacy || client === null || this.closing || refused(client, data)) return super.send(topic, data, meta);
    this.held.push([topic, data]);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.publishHeld);
    }
    return Promise.resolve();
  }

  /** Publishes the held packets, in the order they were sent; nats.js writes them in one go. */
  private readonly publishHeld = (): void => {
    this.scheduled = false;
    const held = this.held;
    if (held.length === 0) return;
    this.held = [];
    const { client, logger } = this.internals;
    if (client === null) return;
    for (const [topic, data] of held) {
      try {
        client.publish(topic, data);
      } catch (err) {
        logger.warn(`NATS refused a packet held for this turn of the event loop (${topic}); it is dropped`, err);
      }
    }
  };

  /** Its flush must follow the packets sent before it. */
  override unsubscribeFromBalancedCommands(): Promise<void> {
    this.publishHeld();
    return super.unsubscribeFromBalancedCommands();
  }

  /** A broker started again after a stop connects the same transporter again: it batches again. */
  override connect(): Promise<void> {
    this.closing = false;
    return super.connect() as Promise<void>;
  }

  override disconnect(): Promise<void> {
    this.closing = true;
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
