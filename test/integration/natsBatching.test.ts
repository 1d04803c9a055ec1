/**
 * The NATS transporter Clawfleet's nodes use (src/transport/batchingNats.ts), over the real NATS server in
 * a namespace of its own: the packets a node sends in one turn of its event loop leave in one socket
 * write, in the order they were sent; calls and events arrive as they would without it; a packet NATS
 * refuses fails its call as it would without it; and a node that stops still sends what it holds, its
 * DISCONNECT last.
 */
import type net from "node:net";
import { ServiceBroker, type Context } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatchingNatsTransporter, transporterFor } from "../../src/transport/batchingNats";
import { hasService, NATS_TEST_URL, uniqueId } from "../helpers/services";

/** The socket under a broker's NATS client (nats.js internals, for counting its writes). */
function natsSocket(broker: ServiceBroker): net.Socket {
  const tx = (broker.transit as unknown as { tx: { client: { protocol: { transport: { socket: net.Socket } } } } }).tx;
  return tx.client.protocol.transport.socket;
}

/** Counts the writes to `socket` while `during` runs. */
async function writesDuring(socket: net.Socket, during: () => Promise<void>): Promise<number> {
  let writes = 0;
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = ((...args: unknown[]) => {
    writes++;
    return write(...args);
  });
  try {
    await during();
  } finally {
    socket.write = write;
  }
  return writes;
}

/** `n` sends, each from its own callback of the same check phase: one turn of the loop, not one microtask run. */
function fromSeparateCallbacks(n: number, send: (i: number) => void): Promise<void> {
  return new Promise((resolve) => {
    for (let i = 0; i < n; i++) setImmediate(() => send(i));
    setImmediate(() => setImmediate(resolve));
  });
}

describe.skipIf(!hasService("nats"))("the batching NATS transporter", () => {
  const namespace = uniqueId("natsbatch");
  const seen: number[] = [];
  const left: string[] = [];
  const broker = (nodeID: string, transporter: BatchingNatsTransporter | string) => new ServiceBroker({ namespace, nodeID, transporter, logger: false });
  const server = broker("server", new BatchingNatsTransporter({ url: NATS_TEST_URL }));
  const batching = broker("batching", new BatchingNatsTransporter({ url: NATS_TEST_URL }));
  const plain = broker("plain", NATS_TEST_URL);

  beforeAll(async () => {
    server.createService({
      name: "echo",
      actions: { say: (ctx: Context<{ i: number }>) => ({ i: ctx.params.i, by: ctx.nodeID }) },
      events: {
        "batching.seq": (ctx: Context<{ i: number }>) => void seen.push(ctx.params.i),
        "$node.disconnected": (ctx: Context<{ node: { id: string }; unexpected: boolean }>) => {
          if (!ctx.params.unexpected) left.push(ctx.params.node.id);
        },
      },
    });
    await Promise.all([server.start(), batching.start(), plain.start()]);
    await Promise.all([batching.waitForServices("echo", 10_000), plain.waitForServices("echo", 10_000)]);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([server.stop(), batching.stop(), plain.stop()]);
  });

  it("sends what one turn of the loop sent in one write, in order, where Moleculer's own writes each", async () => {
    seen.length = 0;
    const viaBatching = await writesDuring(natsSocket(batching), () => fromSeparateCallbacks(20, (i) => void batching.emit("batching.seq", { i })));
    await expect.poll(() => seen.length, { timeout: 5_000 }).toBe(20);
    expect(seen).toEqual([...Array(20).keys()]);

    seen.length = 0;
    const viaPlain = await writesDuring(natsSocket(plain), () => fromSeparateCallbacks(20, (i) => void plain.emit("batching.seq", { i })));
    await expect.poll(() => seen.length, { timeout: 5_000 }).toBe(20);

    // One write; a second only if a heartbeat's timer (or a PING) fell in the same few milliseconds.
    expect(viaBatching).toBeLessThanOrEqual(2);
    expect(viaPlain).toBeGreaterThanOrEqual(20);
  });

  it("answers every call, each with its own answer, sent together or over several turns", async () => {
    const together = await Promise.all(Array.from({ length: 50 }, (_, i) => batching.call<{ i: number; by: string }, { i: number }>("echo.say", { i })));
    expect(together).toEqual(Array.from({ length: 50 }, (_, i) => ({ i, by: "batching" })));
    const apart: Array<{ i: number }> = [];
    for (let i = 0; i < 5; i++) apart.push(await batching.call("echo.say", { i }));
    expect(apart.map((a) => a.i)).toEqual([0, 1, 2, 3, 4]);
  });

  it("a packet NATS refuses at once (over the server's payload limit) fails its call at once, as with Moleculer's own", async () => {
    const max = (batching.transit as unknown as { tx: { client: { info: { max_payload: number } } } }).tx.client.info.max_payload;
    const big = { i: 0, pad: "x".repeat(max + 1) };
    await expect(batching.call("echo.say", big)).rejects.toThrow(/MAX_PAYLOAD_EXCEEDED/);
    await expect(plain.call("echo.say", big)).rejects.toThrow(/MAX_PAYLOAD_EXCEEDED/);
    // The connection is still good for the next one.
    await expect(batching.call("echo.say", { i: 1 })).resolves.toEqual({ i: 1, by: "batching" });
  }, 10_000);

  it("a node that stops sends what it holds, then its DISCONNECT: the others see it leave at once", async () => {
    const leaving = broker("leaving", new BatchingNatsTransporter({ url: NATS_TEST_URL }));
    try {
      await leaving.start();
      await leaving.waitForServices("echo", 10_000);
      await expect.poll(() => server.registry.nodes.has("leaving"), { timeout: 10_000 }).toBe(true);
      seen.length = 0;
      // Sent in the same turn as the disconnect: held when it begins.
      void leaving.emit("batching.seq", { i: 7 });
      const stopping = Date.now();
      await leaving.transit?.disconnect();
      await expect.poll(() => seen, { timeout: 5_000 }).toEqual([7]);
      // Moleculer's heartbeat timeout is 30 s: within 5 s, only the DISCONNECT packet can have told the server.
      await expect.poll(() => left.includes("leaving"), { timeout: 5_000 }).toBe(true);
      expect(Date.now() - stopping).toBeLessThan(5_000);
    } finally {
      await leaving.stop();
    }
  });

  it("a broker stopped and started again batches again", async () => {
    const again = broker("again", new BatchingNatsTransporter({ url: NATS_TEST_URL }));
    try {
      await again.start();
      await again.stop();
      await again.start();
      await again.waitForServices("echo", 10_000);
      seen.length = 0;
      const writes = await writesDuring(natsSocket(again), () => fromSeparateCallbacks(20, (i) => void again.emit("batching.seq", { i })));
      await expect.poll(() => seen.length, { timeout: 5_000 }).toBe(20);
      expect(seen).toEqual([...Array(20).keys()]);
      expect(writes).toBeLessThanOrEqual(2);
    } finally {
      await again.stop();
    }
  });

  it("is the transporter for a NATS URL; any other URL is Moleculer's own", () => {
    expect(transporterFor("nats://127.0.0.1:4222")).toBeInstanceOf(BatchingNatsTransporter);
    expect(transporterFor("redis://127.0.0.1:6379")).toBe("redis://127.0.0.1:6379");
    expect(transporterFor(undefined)).toBeNull();
  });
});
