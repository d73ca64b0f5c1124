import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type tls from 'node:tls';
import { RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeEndpoint, type RedisEndpoint } from '../redis-url.js';
import { RedisClient } from '../resp/client.js';
import { encodeCommand } from '../resp/encode.js';
import { type Frame, FrameScanner } from '../resp/frames.js';

export interface TargetOptions {
  endpoint: RedisEndpoint;
  tlsOptions?: tls.ConnectionOptions;
  /** The address the target connects back to; by default the one rf reaches it from. */
  serveHost?: string;
  /** Longest wait with no progress from the target (its RDB load shows none until it ends). */
  idleTimeoutMs: number;
  log: Logger;
}

/** Refuses a target that holds keys, or that is a replica: rf loads only empty, standalone instances. */
export async function checkTarget(client: RedisClient): Promise<void> {
  const where = describeEndpoint(client.endpoint);
  const keyspace = await client.info('keyspace');
  const dbs = Object.entries(keyspace).filter(([k]) => /^db\d+$/.test(k));
  if (dbs.length > 0) {
    const keys = dbs.reduce((n, [, v]) => n + Number(/keys=(\d+)/.exec(v)?.[1] ?? 0), 0);
    throw new RfError('RF_TARGET_NOT_EMPTY', `the target ${where} already holds ${keys} keys`, {
      details: { target: where, keyspace: Object.fromEntries(dbs) },
      hint: 'restore into an empty instance (a new redis-server), or use --out DIR and boot from it',
    });
  }
  const replication = await client.info('replication');
  if (replication.role === 'slave') {
    throw new RfError(
      'RF_TARGET',
      `the target ${where} is a replica of ${replication.master_host}:${replication.master_port}`,
      {
        details: { target: where },
        hint: 'restore into a standalone instance: run REPLICAOF NO ONE on it first, or start a new one',
      },
    );
  }
}

/**
 * Loads a base and the writes after it into a running, empty Redis, at replication speed: rf
 * serves them as a master would (+FULLRESYNC, the RDB, then the commands), waits until the
 * target acknowledges the last byte, and detaches it with REPLICAOF NO ONE. The target keeps
 * exactly the data it was sent, with no load of its own to slow it down.
 */
export async function loadTarget(
  options: TargetOptions,
  base: { bytes: number; chunks: AsyncIterable<Buffer> },
  incr: AsyncIterable<Buffer>,
): Promise<{ streamBytes: number }> {
  const { endpoint, log } = options;
  const where = describeEndpoint(endpoint);
  const client = await RedisClient.connect(endpoint, {
    // --target-timeout bounds every wait on the target, its first answers included.
    timeoutMs: Math.min(10_000, options.idleTimeoutMs),
    ...(options.tlsOptions ? { tlsOptions: options.tlsOptions } : {}),
  });
  let server: net.Server | null = null;
  let attached = false;
  try {
    await checkTarget(client);
    const host = options.serveHost ?? client.localAddress ?? '127.0.0.1';
    const served = serveOnce(base, incr, options.idleTimeoutMs, where, log);
    server = served.server;
    await new Promise<void>((resolve, reject) => {
      served.server.once('error', reject);
      served.server.listen(0, host, () => resolve());
    });
    const { port } = served.server.address() as net.AddressInfo;
    log.info({ target: where, serve: `${host}:${port}` }, 'target attaching as a replica of rf');
    await client.call('REPLICAOF', host, String(port));
    attached = true;
    const result = await served.done;
    await client.call('REPLICAOF', 'NO', 'ONE');
    attached = false;
    return result;
  } finally {
    if (attached) await client.call('REPLICAOF', 'NO', 'ONE').catch(() => undefined);
    server?.close();
    await client.close().catch(() => undefined);
  }
}

function serveOnce(
  base: { bytes: number; chunks: AsyncIterable<Buffer> },
  incr: AsyncIterable<Buffer>,
  idleTimeoutMs: number,
  where: string,
  log: Logger,
): { server: net.Server; done: Promise<{ streamBytes: number }> } {
  let resolveDone!: (v: { streamBytes: number }) => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<{ streamBytes: number }>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  let taken = false;
  const server = net.createServer((socket) => {
    if (taken) {
      socket.destroy();
      return;
    }
    taken = true;
    void converse(socket).then(resolveDone, (err: unknown) => {
      socket.destroy();
      rejectDone(err);
    });
  });

  const converse = async (socket: net.Socket): Promise<{ streamBytes: number }> => {
    // A replica sends bare newlines to its master while it loads the snapshot.
    const scanner = new FrameScanner({ keepalives: true });
    let acked = -1;
    let lastProgress = Date.now();
    let onAck: (() => void) | null = null;
    let psync: (() => void) | null = null;
    const psyncSeen = new Promise<void>((r) => {
      psync = r;
    });
    let failure: unknown = null;
    socket.on('error', (err) => {
      failure ??= err;
    });
    socket.on('data', (chunk: Buffer) => {
      lastProgress = Date.now();
      let frames: Frame[];
      try {
        frames = scanner.push(chunk);
      } catch (err) {
        failure = err;
        socket.destroy();
        return;
      }
      for (const f of frames) {
        if (f.kind !== 'command') continue;
        const name = f.args[0]?.toString('latin1').toLowerCase();
        const sub = f.args[1]?.toString('latin1').toLowerCase();
        if (name === 'ping') socket.write('+PONG\r\n');
        else if (name === 'replconf' && sub === 'ack') {
          acked = Number(f.args[2]?.toString('latin1'));
          onAck?.();
        } else if (name === 'psync' || name === 'sync') psync?.();
        else socket.write('+OK\r\n');
      }
    });
    const closed = new Promise<never>((_, reject) => {
      socket.once('close', () =>
        reject(
          new RfError(
            'RF_TARGET',
            `the target ${where} dropped the replication link during the restore${failure === null ? '' : `: ${(failure as Error).message}`}`,
            {
              details: { target: where },
              hint: "check the target's log: a dataset too large for its maxmemory, or a base from a newer Redis",
              ...(failure === null ? {} : { cause: failure }),
            },
          ),
        ),
      );
    });
    closed.catch(() => undefined);
    await Promise.race([psyncSeen, closed]);

    const write = async (buf: Buffer | string) => {
      if (!socket.write(buf))
        await Promise.race([new Promise((r) => socket.once('drain', r)), closed]);
    };
    await write(`+FULLRESYNC ${randomBytes(20).toString('hex')} 0\r\n$${base.bytes}\r\n`);
    for await (const chunk of base.chunks) await write(chunk);
    let streamBytes = 0;
    for await (const chunk of incr) {
      await write(chunk);
      streamBytes += chunk.length;
    }
    // Ask for an ACK now rather than at the target's next second.
    await write(encodeCommand(['REPLCONF', 'GETACK', '*']));
    const target = streamBytes;
    await Promise.race([
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (acked >= target) {
            clearInterval(timer);
            resolve();
          } else if (Date.now() - lastProgress > idleTimeoutMs) {
            clearInterval(timer);
            reject(
              new RfError(
                'RF_TIMEOUT',
                `the target ${where} made no progress for ${idleTimeoutMs} ms (acknowledged ${acked} of ${target} bytes)`,
                {
                  details: { target: where, acked, expected: target },
                  hint: "check the target's log; a very large base may need a longer --target-timeout",
                },
              ),
            );
          }
        };
        onAck = check;
        const timer = setInterval(check, 200);
      }),
      closed,
    ]);
    log.debug({ acked, streamBytes }, 'target acknowledged every byte');
    socket.end();
    return { streamBytes };
  };
  return { server, done };
}
