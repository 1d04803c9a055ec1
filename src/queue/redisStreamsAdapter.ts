/**
 * @moleculer/channels' Redis Streams adapter, hardened for a Redis that comes
 * back empty (restarted without persistence, failed over to a fresh replica).
 * The library (0.1.x) handles neither of these:
 *
 * - The stream and its consumer group vanish with the data. The library's read
 *   loop then fails with NOGROUP and retries at once, forever: the planners never
 *   read again and spin a core each. Here a NOGROUP reply re-creates the group
 *   (MKSTREAM, from "0": every entry of a stream that lost its group was published
 *   after the loss, so none has been read) and the loop carries on.
 * - An ACK that fails (Redis down longer than the client's retries) rejects a
 *   promise that nobody awaits, which ends the process, and the message keeps its
 *   in-flight slot for good, so the consumer slowly stops reading. Here the failure
 *   is logged and the slot freed. The message is only a wake-up: left unacknowledged,
 *   it is claimed again much later (minIdleTime) and found to be done; the task
 *   itself never depended on it.
 * - Any other read failure pauses the loop briefly instead of spinning.
 *
 * - The dead-letter stream is written without a length cap. Here it is capped
 *   (`deadLetterMaxLen`; dead-lettering is rare, so trimming is exact).
 *
 * Queued tasks whose wake-ups were lost with the stream are found again by the
 * reaper (Postgres is the truth).
 */
import { Adapters } from "@moleculer/channels";
import type { Redis } from "ioredis";
import { messageOf } from "../errors";

const RedisAdapter = Adapters.Redis;
type RedisAdapterInstance = InstanceType<typeof RedisAdapter>;
type Chan = Parameters<RedisAdapterInstance["processMessage"]>[0];

/** Pause of the read loop after a failure other than NOGROUP (Redis unreachable, a timeout). */
const READ_FAILURE_PAUSE_MS = 500;

const isNoGroup = (err: unknown): boolean => /^NOGROUP\b/.test(messageOf(err));

type Command = (...args: unknown[]) => Promise<unknown>;

export class RedisStreamsAdapter extends RedisAdapter {
  private readonly deadLetterMaxLen: number | undefined;

  /** The library's options, plus `deadLetterMaxLen`: entries the dead-letter stream keeps. */
  constructor(opts: Record<string, unknown> & { deadLetterMaxLen?: number }) {
    super(opts as ConstructorParameters<typeof RedisAdapter>[0]);
    this.deadLetterMaxLen = opts.deadLetterMaxLen;
  }

  /** The library's move, then the stream trimmed to its cap. */
  override async moveToDeadLetter(chan: Chan, originalID: string, message: unknown, headers: unknown): Promise<void> {
    await super.moveToDeadLetter(chan, originalID, message, headers);
    const cap = this.deadLetterMaxLen;
    const queue = (chan as { deadLettering?: { queueName?: string } }).deadLettering?.queueName;
    if (cap === undefined || queue === undefined) return;
    const client = (this as unknown as { clients: Map<string, Redis>; nackedName: string }).clients.get((this as unknown as { nackedName: string }).nackedName);
    await client?.xtrim(queue, "MAXLEN", cap);
  }

  override async createRedisClient(name: string, opts: unknown): Promise<Redis> {
    // The library never builds a cluster client with our options (no `cluster` key), so this is a Redis.
    const client = (await super.createRedisClient(name, opts)) as Redis;
    this.guard(client, "xreadgroupBuffer", (args) => streamAndGroup(args, "read"), null, READ_FAILURE_PAUSE_MS);
    this.guard(client, "xautoclaimBuffer", (args) => streamAndGroup(args, "claim"), null, 0);
    this.guard(client, "xpending", (args) => streamAndGroup(args, "claim"), [], 0);
    // The publishing client sends the wake-ups (XADD) and the acknowledgements: many per
    // tick under load, each awaited. Pipelined, the commands of one tick leave in one
    // socket write instead of one each (the library passes no client options with a URL,
    // and ioredis reads this one per command). The reading clients block, so they never are.
    if (name === (this as unknown as { pubName: string }).pubName) client.options.enableAutoPipelining = true;
    return client;
  }

  /**
   * Handles one batch like the library, but a failure after the handlers ran (the
   * ACK) is logged and frees the batch's in-flight slots instead of escaping.
   */
  override async processMessage(chan: Chan, message: unknown[]): Promise<void> {
    try {
      await super.processMessage(chan, message);
    } catch (err) {
      const ids = batchIds(message);
      this.logger.warn(`channel ${chan.name}: could not acknowledge ${ids.length} message(s) (${messageOf(err)}); they stay pending and are harmless wake-ups`);
      // Throws only when the channel is no longer tracked (unsubscribed meanwhile): nothing left to free then.
      if (this.getNumberOfChannelActiveMessages(chan.id) > 0) this.removeChannelActiveMessages(chan.id, ids);
    }
  }

  /**
   * Wraps one stream command of `client`: a NOGROUP reply re-creates the group and
   * answers `empty` (nothing read this round); any other failure is passed on after
   * `pauseMs`.
   */
  private guard(client: Redis, method: string, target: (args: unknown[]) => [string, string] | undefined, empty: unknown, pauseMs: number): void {
    const commands = client as unknown as Record<string, Command>;
    const original = commands[method];
    if (typeof original !== "function") throw new TypeError(`ioredis has no ${method}; the channels adapter needs it`);
    commands[method] = async (...args: unknown[]) => {
      try {
        return await original.apply(client, args);
      } catch (err) {
        const where = target(args);
        if (where && isNoGroup(err)) {
          await this.recreateGroup(client, where[0], where[1]);
          return empty;
        }
        if (pauseMs > 0 && !this.stopping) await new Promise((r) => setTimeout(r, pauseMs));
        throw err;
      }
    };
  }

  private async recreateGroup(client: Redis, stream: string, group: string): Promise<void> {
    try {
      await client.xgroup("CREATE", stream, group, "0", "MKSTREAM");
      this.logger.warn(`channel stream ${stream} had lost consumer group ${group} (Redis lost its data?); re-created it`);
    } catch (err) {
      // Another consumer re-created it first.
      if (!/^BUSYGROUP\b/.test(messageOf(err))) throw err;
    }
  }
}

/** Stream and group named by the arguments of XREADGROUP (`GROUP g c … STREAMS s >`) or of XAUTOCLAIM / XPENDING (`s g …`). */
function streamAndGroup(args: unknown[], shape: "read" | "claim"): [string, string] | undefined {
  if (shape === "claim") return typeof args[0] === "string" && typeof args[1] === "string" ? [args[0], args[1]] : undefined;
  const streams = args.indexOf("STREAMS");
  const stream = args[streams + 1];
  const group = args[1];
  return streams > 0 && typeof stream === "string" && typeof group === "string" ? [stream, group] : undefined;
}

/** Entry ids of an XREADGROUP / XAUTOCLAIM reply (`[[stream, [[id, fields], …]], …]`), as the library reads them. */
function batchIds(message: unknown[]): string[] {
  const first = message[0] as [unknown, Array<[Buffer | string, unknown]>] | undefined;
  return (first?.[1] ?? []).map((entry) => entry[0].toString());
}
