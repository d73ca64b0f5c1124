import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startControlServer } from '../../src/daemon/control.js';
import { RemoteKv } from '../../src/daemon/control-client.js';
import { CONTROL_LIMITS } from '../../src/daemon/control-request.js';
import { RfError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { type KvRange, type KvReader, Store } from '../../src/store/store.js';
import { waitFor } from '../helpers/load.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * Nothing a client does to the control socket may harm the daemon that holds the archive: a
 * reader that goes away mid-reply, garbage, a line with no end, a request left half sent, a
 * reader that asks and never reads, a crowd. Each is tried here against the real server, and
 * the socket must still serve an honest reader afterwards.
 */

async function all(kv: KvReader, range: KvRange): Promise<[string, Buffer][]> {
  const out: [string, Buffer][] = [];
  for await (const entry of kv.entries(range)) out.push(entry);
  return out;
}

/** Counts the pages the daemon starts to read, to see how far it runs ahead of a reader. */
function counting(kv: KvReader): { kv: KvReader; started: () => number } {
  let started = 0;
  return {
    started: () => started,
    kv: {
      dir: kv.dir,
      get: (key) => kv.get(key),
      entries: (range) => {
        started++;
        return kv.entries(range);
      },
      close: () => kv.close(),
    },
  };
}

/**
 * Reply heads as they arrive on a raw connection, the raw bytes announced by each skipped.
 */
function heads(conn: net.Socket, onHead: (head: Record<string, unknown>) => void): void {
  let pending = Buffer.alloc(0);
  let skip = 0;
  conn.on('data', (chunk: Buffer) => {
    let at = 0;
    while (at < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - at);
        skip -= n;
        at += n;
        continue;
      }
      const nl = chunk.indexOf(10, at);
      if (nl === -1) {
        pending = Buffer.concat([pending, chunk.subarray(at)]);
        return;
      }
      const line = Buffer.concat([pending, chunk.subarray(at, nl)]).toString('utf8');
      pending = Buffer.alloc(0);
      at = nl + 1;
      const head = JSON.parse(line) as Record<string, unknown>;
      skip = typeof head.body === 'number' ? head.body : 0;
      onHead(head);
    }
  });
}

async function connectRaw(socketPath: string): Promise<net.Socket> {
  const conn = net.connect(socketPath);
  conn.on('error', () => undefined);
  await once(conn, 'connect');
  return conn;
}

/** Resolves when the connection is closed, whether or not with an error. */
function closedOf(conn: net.Socket): Promise<void> {
  return new Promise((resolve) => conn.once('close', () => resolve()));
}

describe('the control socket under abuse', () => {
  let dir: string;
  let store: Store;
  let counter: ReturnType<typeof counting>;
  let server: { close(): Promise<void> };
  const socket = () => path.join(dir, 'rf.sock');
  const limits = { ...CONTROL_LIMITS, partialRequestMs: 500, connections: 64 };

  beforeEach(async () => {
    dir = await makeTempDir('rf-control-abuse-');
    store = await Store.open(path.join(dir, 'store'), { create: true });
    const ops = [];
    for (let i = 0; i < 2_000; i++) {
      ops.push({
        type: 'put' as const,
        key: `k/${String(i).padStart(5, '0')}`,
        value: Buffer.from(`v${i}`),
      });
    }
    // Pages of these are cut by size (4 MB): each answer is larger than a socket's buffers.
    for (let i = 0; i < 6; i++) {
      ops.push({ type: 'put' as const, key: `z/${i}`, value: Buffer.alloc(1_500_000, i + 1) });
    }
    await store.batch(ops);
    counter = counting(store);
    server = await startControlServer(
      socket(),
      counter.kv,
      () => ({ up: true }),
      silentLogger(),
      limits,
    );
  });

  afterEach(async () => {
    await server.close();
    await store.close();
    await removeTempDir(dir);
  });

  /** An honest reader still gets every entry, exactly. */
  async function stillServes(): Promise<void> {
    const kv = await RemoteKv.connect(dir, socket());
    if (kv === null) throw new Error('no daemon answered on the control socket');
    try {
      expect(await kv.status()).toEqual({ up: true });
      const through = await all(kv, {});
      expect(through.map(([k]) => k)).toEqual((await all(store, {})).map(([k]) => k));
    } finally {
      await kv.close();
    }
  }

  it('survives readers that go away in the middle of a reply (ECONNRESET on its side)', async () => {
    for (let i = 0; i < 20; i++) {
      const conn = await connectRaw(socket());
      conn.write(`${JSON.stringify({ id: 1, op: 'entries', range: { gte: 'z/' } })}\n`);
      await once(conn, 'data');
      // Gone with the rest of the reply unread: the kernel resets the daemon's end.
      conn.destroy();
    }
    await stillServes();
  });

  it('answers garbage and malformed requests with RF_USAGE, and the same connection goes on', async () => {
    const lines: (string | Buffer)[] = [
      Buffer.from(randomBytes(300).map((b) => (b === 10 ? 32 : b))),
      Buffer.from([0xff, 0xfe, 0xc3]),
      '{}',
      '[]',
      'null',
      '{"id":1}',
      '{"id":2,"op":"frobnicate"}',
      '{"id":3,"op":"get"}',
      '{"id":4,"op":"get","key":7}',
      '{"id":5,"op":"entries"}',
      '{"id":6,"op":"entries","range":{"gt":5}}',
      '{"id":7,"op":"entries","range":{"limit":"all"}}',
      '{"id":8,"op":"entries","range":{},"maxBytes":1e400}',
      '{"id":"x","op":"status"}',
      '{"id":9,"op":"get","key":"k/00001"',
    ];
    const conn = await connectRaw(socket());
    const got: Record<string, unknown>[] = [];
    heads(conn, (h) => got.push(h));
    for (const line of lines) {
      conn.write(line);
      conn.write('\n');
    }
    conn.write(`${JSON.stringify({ id: 10, op: 'status' })}\n`);
    await waitFor(() => got.length === lines.length + 1, 'an answer to every line');
    conn.destroy();
    const errors = got.slice(0, lines.length);
    expect(errors.map((h) => (h.error as { code: string } | undefined)?.code)).toEqual(
      lines.map(() => 'RF_USAGE'),
    );
    expect(errors[6]!.id).toBe(2);
    expect(got[lines.length]).toEqual({ id: 10, status: { up: true } });
    await stillServes();
  });

  it('drops a line that runs past the request limit, holding no more than the limit', async () => {
    const conn = await connectRaw(socket());
    const closed = closedOf(conn);
    const mb = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 0; i < 8 && !conn.destroyed; i++) conn.write(mb);
    await closed;
    await stillServes();
  });

  it('closes a connection whose request is left half sent, and serves others meanwhile', async () => {
    const conn = await connectRaw(socket());
    const closed = closedOf(conn);
    conn.write('{"id":1,"op":"ent');
    await stillServes();
    await closed;
    expect(conn.bytesRead).toBe(0);
  });

  it('reads no further ahead of a reader that asks and does not read', async () => {
    const conn = await connectRaw(socket());
    conn.pause();
    const asked = 40;
    for (let id = 1; id <= asked; id++) {
      conn.write(`${JSON.stringify({ id, op: 'entries', range: { gte: 'z/', lt: 'z0' } })}\n`);
    }
    await waitFor(() => counter.started() >= 1, 'the daemon to start on the first request');
    let received = 0;
    let furthestAhead = 0;
    const done = new Promise<void>((resolve) => {
      heads(conn, () => {
        received++;
        furthestAhead = Math.max(furthestAhead, counter.started() - received);
        if (received === asked) resolve();
      });
    });
    conn.resume();
    await done;
    conn.destroy();
    // One page in the socket, one being read: never the forty the reader asked for.
    expect(furthestAhead).toBeLessThanOrEqual(2);
    await stillServes();
  });

  it('makes room for a reader when idle and half-sent connections hold every slot', async () => {
    const idle: net.Socket[] = [];
    for (let i = 0; i < limits.connections; i++) {
      const conn = await connectRaw(socket());
      // Half of them sent half a request, the other half garbage answered with an error.
      conn.write(i % 2 === 0 ? '{"id":1,"op":' : 'garbage\n');
      conn.resume();
      idle.push(conn);
    }
    await waitFor(
      () => idle.filter((c) => c.bytesRead > 0).length === limits.connections / 2,
      'the garbage answered',
    );
    await stillServes();
    expect(idle.filter((c) => c.destroyed).length).toBeGreaterThan(0);
    for (const c of idle) c.destroy();
  });

  it('serves 50 readers at once; past its cap of connections a reader fails only as RF_DAEMON', async () => {
    const range = { gte: 'k/', lt: 'k/01' };
    const expected = (await all(store, range)).map(([k]) => k);
    const readOnce = async (): Promise<'served' | 'refused'> => {
      const kv = await RemoteKv.connect(dir, socket());
      if (kv === null) return 'refused';
      try {
        const keys = (await all(kv, range)).map(([k]) => k);
        expect(keys).toEqual(expected);
        return 'served';
      } catch (err) {
        if (err instanceof RfError && err.code === 'RF_DAEMON') return 'refused';
        throw err;
      } finally {
        await kv.close();
      }
    };
    const fifty = await Promise.all(Array.from({ length: 50 }, readOnce));
    expect(fifty.filter((r) => r === 'served').length).toBe(50);
    const hundred = await Promise.all(Array.from({ length: 100 }, readOnce));
    expect(hundred.filter((r) => r === 'served').length).toBeGreaterThanOrEqual(limits.connections);
    await stillServes();
  });
});
