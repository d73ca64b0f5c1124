import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHUNK_HEADER, encodeHeader, paths } from '../../src/aof/wire.js';
import { WriteLoad, waitFor } from '../helpers/load.js';
import { freePort } from '../helpers/redis.js';
import { rf } from '../helpers/rf.js';
import { caughtUp, testScope } from '../helpers/scope.js';

/**
 * A running rf listen under attack on both of its doors, the ingest port (an authorised token
 * included) and the control socket: random and truncated requests, huge bodies and lines, slow
 * clients, a hundred connections at once. Meanwhile it must go on capturing the master, stay
 * under 200 MB of resident memory, and store nothing from a refused request.
 */

const scope = testScope();
const TOKEN = 'fuzz-token-3b7e91';
const RSS_LIMIT = 200 * 1024 * 1024;

/** Resolves when the connection is gone, whoever ended it. */
const closed = (s: net.Socket) =>
  new Promise<void>((r) => {
    if (s.destroyed) r();
    else s.once('close', () => r());
  });

function connect(to: { port: number } | { path: string }): net.Socket {
  const s = 'port' in to ? net.connect(to.port, '127.0.0.1') : net.connect(to.path);
  s.on('error', () => undefined);
  // Read (and drop) what comes back: a socket never read never sees the peer close it.
  s.resume();
  return s;
}

/** Streams `total` bytes of filler after `head`, as fast as the peer takes them, until it drops us. */
async function flood(s: net.Socket, head: string, total: number): Promise<void> {
  const mb = Buffer.alloc(1024 * 1024, 'x');
  s.write(head);
  for (let sent = 0; sent < total && !s.destroyed; sent += mb.length) {
    if (!s.write(mb))
      await new Promise<void>((r) => {
        s.once('drain', () => r());
        s.once('close', () => r());
      });
  }
  s.destroy();
}

/** Peak resident memory of a process (VmHWM), in bytes. */
async function peakRss(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

describe('rf listen under attack on its ingest port and control socket', () => {
  it('keeps capturing, stays under 200 MB and stores nothing it refused', {
    timeout: 120_000,
  }, async () => {
    const master = await scope.master();
    const store = await scope.storeDir();
    const tokens = path.join(path.dirname(store), 'tokens');
    await fs.writeFile(tokens, `${TOKEN}\n`, { mode: 0o600 });
    const port = await freePort();
    const daemon = scope.daemon(
      [
        '--source',
        master.url,
        '--store',
        store,
        '--ingest',
        `127.0.0.1:${port}`,
        '--ingest-token-file',
        tokens,
        '--ingest-max-chunk',
        '8m',
      ],
      { RF_LOG_LEVEL: 'warn' },
    );
    await waitFor(
      async () => (await fs.stat(path.join(store, 'rf.sock')).catch(() => null)) !== null,
      'the control socket',
    );
    const pid = daemon.child.pid!;
    const load = new WriteLoad(await master.client());
    load.start();
    const control = { path: path.join(store, 'rf.sock') };
    const ingest = { port };
    const held: net.Socket[] = [];
    const hold = (s: net.Socket) => {
      held.push(s);
      return s;
    };

    const attacks: Promise<unknown>[] = [];
    // A hundred connections at once on each door, each sending random bytes and staying.
    for (let i = 0; i < 100; i++) {
      hold(connect(ingest)).write(randomBytes(200));
      hold(connect(control)).write(randomBytes(200));
    }
    // Random HTTP and random lines, each on its own connection, to the end.
    for (let i = 0; i < 30; i++) {
      const s = connect(ingest);
      s.end(Buffer.concat([randomBytes(100 + i * 10), Buffer.from('\r\n\r\n')]));
      attacks.push(closed(s));
      const c = connect(control);
      c.end(Buffer.concat([randomBytes(100 + i * 10), Buffer.from('\n')]));
      attacks.push(closed(c));
    }
    // Truncated requests: a declared body cut short; a control request cut short.
    for (let i = 0; i < 20; i++) {
      const s = connect(ingest);
      s.end(
        `PUT ${paths.size('default')} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: 1000\r\n\r\n{"at":`,
      );
      attacks.push(closed(s));
      const c = hold(connect(control));
      c.write('{"id":1,"op":"entr');
    }
    // Slow clients: headers begun and never finished.
    for (let i = 0; i < 10; i++)
      hold(connect(ingest)).write(`PUT ${paths.size('default')} HTTP/1.1\r\nhost: `);
    // Huge bodies, with and without the token; a huge line with no end.
    attacks.push(
      flood(
        connect(ingest),
        `PUT ${paths.chunk('default', 1, 0)} HTTP/1.1\r\nhost: x\r\ncontent-length: 314572800\r\n\r\n`,
        300 * 1024 * 1024,
      ),
    );
    const claimed = {
      fileNo: 1,
      file: 'appendonly.aof.1.incr.aof',
      seq: 1,
      start: 0,
      end: 300 * 1024 * 1024,
      sha256: '0'.repeat(64),
      capturedAt: Date.now(),
      commands: 1,
      firstTs: null,
      lastTs: null,
    };
    attacks.push(
      flood(
        connect(ingest),
        `PUT ${paths.chunk('default', 1, 0)} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\n${CHUNK_HEADER}: ${encodeHeader(claimed)}\r\ncontent-length: 314572800\r\n\r\n`,
        300 * 1024 * 1024,
      ),
    );
    attacks.push(flood(connect(control), '', 200 * 1024 * 1024));
    // The token writing a source it was not given: 403, or dropped at the connection cap.
    attacks.push(
      new Promise<void>((resolve) => {
        const req = http.request(`http://127.0.0.1:${port}${paths.size('other')}`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        req.on('response', (res) => {
          expect(res.statusCode).toBe(403);
          res.resume();
          resolve();
        });
        req.on('error', () => resolve());
        req.end(JSON.stringify({ at: Date.now(), bytes: 1 }));
      }),
    );
    // A reader that asks for every entry, over and over, and reads nothing.
    const greedy = hold(connect(control));
    for (let id = 1; id <= 50; id++)
      greedy.write(`${JSON.stringify({ id, op: 'entries', range: {} })}\n`);
    await Promise.all(attacks);

    // Through all of it the daemon answers its readers (an idle attacker makes room for one)
    // and keeps up with the master.
    const during = await rf(['info', '--store', store, '--json']);
    expect(during.code, during.stderr).toBe(0);
    for (const s of held) s.destroy();
    await load.stop();
    await caughtUp(master);
    expect(daemon.child.exitCode).toBeNull();
    expect(await peakRss(pid)).toBeLessThan(RSS_LIMIT);

    // Nothing refused was stored: one source, no AOF record at all.
    const after = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout) as {
      sources: { name: string; aof: { chunks: number; bytes: number } }[];
    };
    expect(after.sources.map((s) => s.name)).toEqual(['default']);
    expect(after.sources[0]!.aof.chunks).toBe(0);
    expect(after.sources[0]!.aof.bytes).toBe(0);
    expect((await daemon.stop()).code).toBe(0);
  });
});
