import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { aofSummary, parseIngestGrants } from '../../src/aof/index.js';
import { type IngestServer, startIngestServer } from '../../src/aof/ingest.js';
import { BASE_HEADER, encodeHeader, paths } from '../../src/aof/wire.js';
import { isRfError } from '../../src/errors.js';
import { parseListen } from '../../src/listen-address.js';
import { silentLogger } from '../../src/logger.js';
import { AofArchive, type AofChunkMeta, AofChunkWriter } from '../../src/store/chunks.js';
import { Store, storePaths } from '../../src/store/store.js';
import { aofFileRecord } from '../helpers/aof-records.js';
import { rf } from '../helpers/rf.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * What an authorised rf ship, or anyone holding its token, can make the receiver do: write only
 * the sources its token names, hold no more than one chunk cap of bodies, store no record that
 * breaks `rf info`, and write no more of a base than it announced.
 */

const CACHE_TOKEN = 'cache-token-5c1f0e';
const OTHER_TOKEN = 'sessions-token-a9d2';
const MAX_CHUNK = 256 * 1024;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let dir: string;
let store: Store;
let ingest: IngestServer;

beforeEach(async () => {
  dir = await makeTempDir('rf-ingest-sec-');
  store = await Store.open(dir, { create: true });
  ingest = await startIngestServer({
    store,
    listen: '127.0.0.1:0',
    grants: parseIngestGrants(
      `# the two shippers\ncache ${CACHE_TOKEN}\nsessions ${OTHER_TOKEN}\n`,
      '--ingest-token-file',
      'default',
    ),
    log: silentLogger(),
    maxChunkBytes: MAX_CHUNK,
  });
});
afterEach(async () => {
  await ingest.close();
  await store.close();
  await removeTempDir(dir);
});

function put(
  route: string,
  body: Buffer | string,
  headers: Record<string, string> = {},
  token = CACHE_TOKEN,
): Promise<Response> {
  return fetch(`${ingest.url}${route}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, ...headers },
    body,
  });
}

const codeOf = async (res: Response) =>
  ((await res.json()) as { error?: { code: string } }).error?.code;

const fileRecord = (fileNo: number) => aofFileRecord(fileNo);

function chunk(data: Buffer, start = 0): AofChunkMeta {
  return {
    fileNo: 1,
    file: 'appendonly.aof.1.incr.aof',
    seq: 1,
    start,
    end: start + data.length,
    sha256: sha256(data),
    capturedAt: Date.now(),
    commands: 1,
    firstTs: null,
    lastTs: null,
  };
}

async function keysOf(source: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const [k] of store.entries({}))
    if (k.includes(`/${source}/`) || k.endsWith(`/${source}`)) keys.push(k);
  return keys;
}

describe('rf listen --ingest', () => {
  it('lets a token write only the sources it names: 403 for the others, which stay empty', async () => {
    const data = Buffer.from('*1\r\n$4\r\nPING\r\n');
    expect((await put(paths.file('cache', 1), JSON.stringify(fileRecord(1)))).status).toBe(200);
    const mine = await put(paths.chunk('cache', 1, 0), data, {
      'x-rf-chunk': encodeHeader(chunk(data)),
    });
    expect(mine.status).toBe(201);
    for (const source of ['sessions', 'default', 'anything-else']) {
      const res = await put(paths.file(source, 1), JSON.stringify(fileRecord(1)));
      expect(res.status, source).toBe(403);
      expect(await codeOf(res)).toBe('RF_AUTH');
      expect(await keysOf(source)).toEqual([]);
    }
    const theirs = await put(
      paths.file('sessions', 1),
      JSON.stringify(fileRecord(1)),
      {},
      OTHER_TOKEN,
    );
    expect(theirs.status).toBe(200);
    expect((await put(paths.file('cache', 2), '{}', {}, 'no-such-token')).status).toBe(401);
  });

  it('reads its token file as `<source> <token>` lines, a bare token being its own --name', () => {
    expect(parseIngestGrants('t0\n\n# c\ncache t1\nsessions t1\n', 'F', 'main')).toEqual([
      { token: 't0', sources: ['main'] },
      { token: 't1', sources: ['cache', 'sessions'] },
    ]);
    for (const bad of ['a SECRETX c\n', '../x SECRETX\n', 'a/b SECRETX\n', 'SECRETX/ t\n']) {
      let err: unknown;
      try {
        parseIngestGrants(bad, '--ingest-token-file', 'main');
      } catch (e) {
        err = e;
      }
      expect(isRfError(err, 'RF_USAGE'), bad).toBe(true);
      expect(JSON.stringify(err)).not.toContain('SECRETX');
    }
  });

  it('refuses a chunk larger than its cap with 413 before reading it, and stores nothing', async () => {
    await put(paths.file('cache', 1), JSON.stringify(fileRecord(1)));
    const small = Buffer.from('*1\r\n$4\r\nPING\r\n');
    const claimed = { ...chunk(small), end: MAX_CHUNK + 1 };
    const res = await put(paths.chunk('cache', 1, 0), small, {
      'x-rf-chunk': encodeHeader(claimed),
    });
    expect(res.status).toBe(413);
    const big = Buffer.alloc(MAX_CHUNK + 1, 'x');
    const sent = await put(paths.chunk('cache', 1, 0), big, {
      'x-rf-chunk': encodeHeader(chunk(big)),
    });
    expect(sent.status).toBe(413);
    expect((await aofSummary(store, 'cache')).chunks).toBe(0);
  });

  it('holds chunk bodies within one cap however many arrive at once, and stores each', async () => {
    await put(paths.file('cache', 1), JSON.stringify(fileRecord(1)));
    // Twenty chunks of most of the cap, sent together, one after the other in the file.
    const pieces = Array.from({ length: 20 }, (_, i) =>
      Buffer.from(
        `*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${MAX_CHUNK - 40}\r\n${String(i % 10).repeat(MAX_CHUNK - 40)}\r\n`,
      ),
    );
    let at = 0;
    const metas = pieces.map((p) => {
      const m = chunk(p, at);
      at += p.length;
      return m;
    });
    // Chunks must join up: each is sent once the one before it is stored, but all are in
    // flight at the transport at once; the later ones wait unread.
    const results = await Promise.all(
      metas.map((m, i) =>
        put(paths.chunk('cache', 1, m.start), pieces[i]!, { 'x-rf-chunk': encodeHeader(m) }),
      ),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 201).length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
  });

  it('refuses stored-metadata values rf info could not print, and control characters in names', async () => {
    const refused = [
      [paths.size('cache'), { at: 9007199254740991, bytes: 10 }],
      [paths.size('cache'), { at: 'not-a-date', bytes: 10 }],
      [paths.size('cache'), { at: Date.now(), bytes: -1 }],
      [
        paths.gap('cache', 1, 0),
        { fileNo: 1, file: 'a.aof', start: 0, end: 5, at: 'not-a-date', reason: 'torn-tail' },
      ],
      [
        paths.gap('cache', 1, 0),
        {
          fileNo: 1,
          file: '\u001b]0;pwned\u0007',
          start: 0,
          end: 5,
          at: Date.now(),
          reason: 'torn-tail',
        },
      ],
      [
        paths.gap('cache', 1, 0),
        { fileNo: 1, file: 'a.aof', start: 0, end: 5, at: Date.now(), reason: 'because' },
      ],
      [paths.file('cache', 1), { ...fileRecord(1), name: 'x\u001b[2J' }],
      [paths.file('cache', 1), { ...fileRecord(1), firstSeenAt: 1e300 }],
    ] as const;
    for (const [route, body] of refused) {
      const res = await put(route, JSON.stringify(body));
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await codeOf(res)).toBe('RF_USAGE');
    }
    expect(await keysOf('cache')).toEqual([]);
    // And what a well-formed sample stores, rf info reads.
    expect(
      (await put(paths.size('cache'), JSON.stringify({ at: Date.now(), bytes: 10 }))).status,
    ).toBe(200);
    await aofSummary(store, 'cache');
  });

  it('stops a base upload at the size it announced: 413, no base and no file left behind', async () => {
    const offer = {
      fileNo: 1,
      name: 'appendonly.aof.1.base.rdb',
      seq: 1,
      ino: 7,
      format: 'rdb',
      bytes: 1000,
      firstFileNo: 2,
    };
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${ingest.url}${paths.base('cache', 1)}`, {
        method: 'PUT',
        headers: {
          authorization: `Bearer ${CACHE_TOKEN}`,
          [BASE_HEADER]: encodeHeader(offer),
          'transfer-encoding': 'chunked',
        },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      // 64 MiB offered for a base of 1000 bytes, a MiB at a time as the socket takes it.
      const mb = Buffer.alloc(1024 * 1024, 'r');
      let sent = 0;
      const more = () => {
        while (sent < 64 && !req.destroyed) {
          sent++;
          if (!req.write(mb)) return void req.once('drain', more);
        }
        req.end();
      };
      more();
    });
    expect(status).toBe(413);
    expect((await aofSummary(store, 'cache')).bases).toBe(0);
    const tmp = await fs.readdir(storePaths(dir).tmp).catch(() => []);
    expect(tmp).toEqual([]);
    const bases = await fs.readdir(path.join(dir, 'aof')).catch(() => []);
    expect(bases).toEqual([]);
  });

  it('keeps a bounded number of per-source sinks for a token granted any source', async () => {
    await ingest.close();
    ingest = await startIngestServer({
      store,
      listen: '127.0.0.1:0',
      grants: [{ token: CACHE_TOKEN, sources: 'any' }],
      log: silentLogger(),
    });
    for (let i = 0; i < 150; i++) {
      const res = await fetch(`${ingest.url}${paths.held(`s${i}`)}`, {
        headers: { authorization: `Bearer ${CACHE_TOKEN}` },
      });
      expect(res.status).toBe(200);
    }
    expect(ingest.stats().sinks).toBeLessThanOrEqual(64);
  });
});

describe('where --ingest and --metrics listen', () => {
  it('a bare :port is loopback; every interface must be named', () => {
    expect(parseListen('--ingest', ':7379')).toEqual({ host: '127.0.0.1', port: 7379 });
    expect(parseListen('--metrics', '9187')).toEqual({ host: '127.0.0.1', port: 9187 });
    expect(parseListen('--ingest', '0.0.0.0:7379').host).toBe('0.0.0.0');
  });

  it('refuses --ingest beyond loopback without TLS unless --ingest-insecure, creating nothing', async () => {
    const tokens = path.join(dir, 'tokens');
    await fs.writeFile(tokens, `default ${CACHE_TOKEN}\n`, { mode: 0o600 });
    const store = path.join(dir, 'refused-store');
    const res = await rf([
      'listen',
      '--source',
      'redis://127.0.0.1:1',
      '--store',
      store,
      '--ingest',
      '0.0.0.0:0',
      '--ingest-token-file',
      tokens,
    ]);
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain('RF_USAGE');
    expect(res.stderr).toContain('--ingest-insecure');
    expect(await fs.stat(store).catch(() => null)).toBeNull();
  });
});

describe('two uploads of one AOF base at once', () => {
  it('leave the file on disk and the recorded checksum in agreement: one stored, one refused', async () => {
    const writer = new AofChunkWriter(store);
    const a = Buffer.alloc(64 * 1024, 'a');
    const b = Buffer.alloc(64 * 1024, 'b');
    const offer = {
      fileNo: 1,
      name: 'appendonly.aof.1.base.rdb',
      seq: 1,
      ino: 7,
      format: 'rdb' as const,
      bytes: a.length,
      firstFileNo: 2,
    };
    // A starts first and finishes last: B is stored while A still streams.
    let bDone!: () => void;
    const bStored = new Promise<void>((r) => {
      bDone = r;
    });
    const slowA = Readable.from(
      (async function* () {
        yield a.subarray(0, 1024);
        await bStored;
        yield a.subarray(1024);
      })(),
    );
    const first = writer.putBase('cache', offer, {
      stream: slowA,
      sha256: Promise.resolve(sha256(a)),
    });
    const second = writer
      .putBase('cache', offer, { stream: Readable.from([b]), sha256: Promise.resolve(sha256(b)) })
      .finally(bDone);
    const [ra, rb] = await Promise.allSettled([first, second]);
    expect(rb).toEqual({ status: 'fulfilled', value: 'stored' });
    expect(ra.status).toBe('rejected');
    expect(isRfError((ra as PromiseRejectedResult).reason, 'RF_CHUNK_CONFLICT')).toBe(true);
    const [record] = await new AofArchive(store).bases('cache');
    const onDisk = await fs.readFile(path.join(dir, record!.file!));
    expect(sha256(onDisk)).toBe(record!.sha256);
    expect(onDisk.equals(b)).toBe(true);
    expect(await fs.readdir(storePaths(dir).tmp)).toEqual([]);
  });
});
