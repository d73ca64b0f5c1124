import { randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { encodeCommand } from '../resp/encode.js';
import { type Frame, FrameScanner } from '../resp/frames.js';

/**
 * The replication port rf serves a restore on. The archive holds every value the source ever
 * held, and the port is reachable by whoever can reach this host, so it serves one connection
 * only: the one that proves it is the target by AUTH with the one-time password rf set as the
 * target's `masterauth`. A replica sends PING, then AUTH, REPLCONF and PSYNC
 * (syncWithMaster in redis/src/replication.c); anything else before AUTH, a wrong password, or
 * a connection that does not authenticate in time is closed, and has cost the restore nothing.
 */

/** What an unauthenticated peer may send: a PING and an AUTH are a few dozen bytes. */
const PRE_AUTH_BYTES = 4096;
/** A peer that has not authenticated by then is not the target's handshake. */
const PRE_AUTH_MS = 5_000;

export interface Served {
  server: net.Server;
  /** Settles when the authenticated target has acknowledged every byte, or failed. */
  done: Promise<{ streamBytes: number }>;
  /** Resolves when the target has authenticated and asked for PSYNC. */
  attached: Promise<void>;
  /** Connections refused before or at AUTH, for the log. */
  refused: () => number;
  /** Stops listening and drops the target's link (once it is detached, or on failure). */
  close(): void;
}

export function serveTarget(
  base: { bytes: number; chunks: AsyncIterable<Buffer> },
  incr: AsyncIterable<Buffer>,
  options: { password: string; idleTimeoutMs: number; where: string; log: Logger },
): Served {
  const { idleTimeoutMs, where, log } = options;
  const password = Buffer.from(options.password);
  let refused = 0;
  let taken = false;
  let link: net.Socket | null = null;
  let resolveDone!: (v: { streamBytes: number }) => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<{ streamBytes: number }>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  // Awaited by the caller only once it has attached the target: a failure before must not be
  // an unhandled rejection (it once crashed rf restore, leaving the target a replica of rf).
  done.catch(() => undefined);
  let onAttached!: () => void;
  const attached = new Promise<void>((r) => {
    onAttached = r;
  });

  const authentic = (given: Buffer | undefined): boolean =>
    given !== undefined && given.length === password.length && timingSafeEqual(given, password);

  const server = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    if (taken) {
      refused++;
      socket.destroy();
      return;
    }
    const scanner = new FrameScanner({ keepalives: true });
    let seen = 0;
    const refuse = (why: string, reply?: string) => {
      refused++;
      log.warn(
        { peer: `${socket.remoteAddress}:${socket.remotePort}`, why },
        'restore port refused a connection',
      );
      if (reply !== undefined) socket.end(reply);
      socket.destroy();
    };
    const timer = setTimeout(() => refuse('no AUTH in time'), PRE_AUTH_MS);
    socket.once('close', () => clearTimeout(timer));
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > PRE_AUTH_BYTES) return refuse('too much before AUTH');
      let frames: Frame[];
      try {
        frames = scanner.push(chunk);
      } catch {
        return refuse('not RESP');
      }
      for (const [i, f] of frames.entries()) {
        if (f.kind !== 'command') continue;
        const name = f.args[0]?.toString('latin1').toLowerCase();
        if (name === 'ping') {
          // What a master with requirepass says; the replica goes on to AUTH.
          socket.write('-NOAUTH Authentication required.\r\n');
          continue;
        }
        if (name !== 'auth')
          return refuse(
            `${name ?? 'an empty command'} before AUTH`,
            '-NOAUTH Authentication required.\r\n',
          );
        if (!authentic(f.args[f.args.length - 1]) || taken) {
          return refuse('wrong password', '-WRONGPASS invalid username-password pair\r\n');
        }
        taken = true;
        link = socket;
        clearTimeout(timer);
        socket.off('data', onData);
        socket.write('+OK\r\n');
        // The frames after AUTH in this chunk (REPLCONF, PSYNC) belong to the conversation.
        const rest = frames.slice(i + 1);
        converse(socket, scanner, rest).then(resolveDone, (err: unknown) => {
          socket.destroy();
          rejectDone(err);
        });
        return;
      }
    };
    socket.on('data', onData);
  });

  const converse = async (
    socket: net.Socket,
    scanner: FrameScanner,
    early: Frame[],
  ): Promise<{ streamBytes: number }> => {
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
    const handle = (frames: Frame[]) => {
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
    };
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
      handle(frames);
    });
    handle(early);
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
    onAttached();

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
    // The link stays up: the target's own INFO must still show it when rf checks.
    log.debug({ acked, streamBytes }, 'target acknowledged every byte');
    return { streamBytes };
  };
  return {
    server,
    done,
    attached,
    refused: () => refused,
    close: () => {
      server.close();
      link?.destroy();
    },
  };
}
