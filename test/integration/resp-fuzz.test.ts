import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRfError } from '../../src/errors.js';
import { parseRedisUrl } from '../../src/redis-url.js';
import { RedisClient, RedisReplyError } from '../../src/resp/client.js';

/**
 * Every reply rf reads goes through redis-parser 3.0.0 (last released 2017). A peer rf connects
 * to (a target, a master, something answering on their port) may send anything: malformed,
 * truncated and oversized replies must end in RF_PROTOCOL (or RF_TIMEOUT for one that stalls),
 * never in a crash, a hang, or a value made up from garbage. A real server cannot be made to
 * send these: a scripted one answers PING with the bytes of each case.
 */

type Script = { bytes: Buffer; after: 'close' | 'stall'; bytewise?: boolean };
const scripts: Script[] = [];
const sockets = new Set<net.Socket>();
let server: net.Server;
let url: string;

beforeAll(async () => {
  server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const script = scripts.shift();
    socket.once('data', async () => {
      if (script === undefined) return void socket.destroy();
      if (script.bytewise) {
        for (const b of script.bytes) {
          if (socket.destroyed) return;
          await new Promise<void>((r) => socket.write(Buffer.from([b]), () => r()));
        }
      } else socket.write(script.bytes);
      if (script.after === 'close') socket.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `redis://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

/** What PING gets when the peer answers with the script's bytes. */
async function answer(
  script: Script,
  timeoutMs = 400,
): Promise<{ ok: unknown } | { err: unknown }> {
  scripts.push(script);
  const client = await RedisClient.connect(parseRedisUrl(url), { timeoutMs });
  try {
    return { ok: await client.call('PING') };
  } catch (err) {
    return { err };
  } finally {
    client.destroy();
  }
}

const codeOf = (r: { ok: unknown } | { err: unknown }) =>
  'err' in r ? (isRfError(r.err) ? r.err.code : String(r.err)) : 'resolved';

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VALID = [
  '+PONG\r\n',
  '-ERR unknown command\r\n',
  ':42\r\n',
  ':-7\r\n',
  '$5\r\nhel\r\n\r\n',
  '$0\r\n\r\n',
  '$-1\r\n',
  '*-1\r\n',
  '*0\r\n',
  '*3\r\n$3\r\nfoo\r\n:1\r\n*2\r\n+a\r\n$-1\r\n',
  '*2\r\n*1\r\n*1\r\n:5\r\n$2\r\nok\r\n',
];

describe('replies rf reads, as redis-parser gets them', () => {
  it('valid replies still parse, whole and split at every byte', async () => {
    const expected: unknown[] = [
      'PONG',
      'ERR unknown command',
      42,
      -7,
      'hel\r\n',
      '',
      null,
      null,
      [],
      ['foo', 1, ['a', null]],
      [[[5]], 'ok'],
    ];
    for (const bytewise of [false, true]) {
      for (const [i, text] of VALID.entries()) {
        const r = await answer({ bytes: Buffer.from(text), after: 'stall', bytewise });
        if (text.startsWith('-')) {
          expect('err' in r && r.err instanceof RedisReplyError, text).toBe(true);
        } else expect(r, JSON.stringify(text)).toEqual({ ok: expected[i] });
      }
    }
  });

  it('malformed and oversized replies end in RF_PROTOCOL at once', async () => {
    const cases = [
      '?oops\r\n',
      '*4294967296\r\n',
      '*99999999999\r\n',
      `$${512 * 1024 * 1024 + 1}\r\n`,
      '$-5\r\n',
      ':abc\r\n',
      ':\r\n',
      '$1x\r\nab\r\n',
      '+OK\n',
      `${'*1\r\n'.repeat(100_000)}:1\r\n`,
      `+${'x'.repeat(2 * 1024 * 1024)}\r\n`,
      '\r\n',
    ];
    for (const text of cases) {
      // Stalled after the bytes: an answer that waits for the timeout would fail as RF_TIMEOUT.
      const r = await answer({ bytes: Buffer.from(text), after: 'stall' }, 5_000);
      expect(codeOf(r), JSON.stringify(text.slice(0, 30))).toBe('RF_PROTOCOL');
    }
  });

  it('a reply cut short ends in RF_PROTOCOL when the peer closes, RF_TIMEOUT when it stalls', async () => {
    for (const text of ['$10\r\nabc', '*2\r\n:1\r\n', '+OK', '*1\r\n$3\r\nfo']) {
      expect(codeOf(await answer({ bytes: Buffer.from(text), after: 'close' }))).toBe(
        'RF_PROTOCOL',
      );
      expect(codeOf(await answer({ bytes: Buffer.from(text), after: 'stall' }))).toBe('RF_TIMEOUT');
    }
  });

  it('300 random mutations of valid replies: each resolves or ends in an RF_ error, none crashes', async () => {
    const random = prng(20261204);
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const base = Buffer.from(VALID[Math.floor(random() * VALID.length)]!);
      const bytes = Buffer.from(base);
      const mutations = 1 + Math.floor(random() * 3);
      let out = bytes;
      for (let m = 0; m < mutations; m++) {
        const at = Math.floor(random() * out.length);
        const kind = random();
        if (kind < 0.4) out[at] = Math.floor(random() * 256);
        else if (kind < 0.7) out = out.subarray(0, at);
        else
          out = Buffer.concat([
            out.subarray(0, at),
            Buffer.from([Math.floor(random() * 256)]),
            out.subarray(at),
          ]);
      }
      const r = await answer({ bytes: out, after: 'close' });
      const code = 'err' in r && r.err instanceof RedisReplyError ? 'reply-error' : codeOf(r);
      expect(
        ['resolved', 'reply-error', 'RF_PROTOCOL', 'RF_CONNECT'],
        out.toString('latin1'),
      ).toContain(code);
      outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
    }
    // The mutations reach every outcome, so the run exercised the refusals it checks.
    expect(outcomes.get('RF_PROTOCOL') ?? 0).toBeGreaterThan(50);
    expect(outcomes.get('resolved') ?? 0).toBeGreaterThan(10);
  });
});
