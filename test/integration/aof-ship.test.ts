import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  HttpSink,
  type IngestServer,
  type IngestTls,
  startCapture,
  startIngestServer,
} from '../../src/aof/index.js';
import { encodeHeader } from '../../src/aof/wire.js';
import { type ShipOptions, run as ship } from '../../src/cli/ship.js';
import { AofArchive, type AofChunkMeta, sha256 } from '../../src/store/chunks.js';
import { Store } from '../../src/store/store.js';
import { aofSummary } from '../../src/store/summary.js';
import {
  commandsOf,
  loadCommands,
  quiet,
  REDIS7_AOF,
  sleep,
  storedBases,
  storedFiles,
} from '../helpers/aof.js';
import { WriteLoad, waitFor } from '../helpers/load.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { lacks } from '../helpers/redis-bin.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const TOKEN = 'test-token-0123456789abcdef';
/** Grants for the tests of the wire itself; the CLI ties each token to named sources. */
const ANY_SOURCE = [{ token: TOKEN, sources: 'any' as const }];
const SOURCE = 'cache';

const scope = testScope();

/** A receiver: a store and the ingest server on it, which can be killed and started again. */
async function receiver(tls?: IngestTls) {
  const dir = await makeTempDir('rf-ingest-');
  let store = await Store.open(dir, { create: true });
  let server: IngestServer | null = await startIngestServer({
    store,
    listen: '127.0.0.1:0',
    grants: ANY_SOURCE,
    log: quiet,
    ...(tls ? { tls } : {}),
  });
  const port = server.port;
  const url = server.url;
  const r = {
    url,
    get store() {
      return store;
    },
    get server() {
      return server!;
    },
    async kill() {
      await server?.close();
      server = null;
      await store.close();
    },
    async restart() {
      store = await Store.open(dir, { create: true });
      server = await startIngestServer({
        store,
        listen: `127.0.0.1:${port}`,
        grants: ANY_SOURCE,
        log: quiet,
      });
    },
  };
  scope.defer(async () => {
    await r.kill().catch(() => undefined);
    await removeTempDir(dir);
  });
  return r;
}

/**
 * Whether the store holds the whole of the master's incr file as it is now. Read at each poll:
 * with appendfsync everysec Redis may postpone writing its AOF buffer while an fsync is under
 * way (flushAppendOnlyFile), so the file can still grow after the writes were answered.
 */
async function holdsWholeIncr(store: Store, redis: RedisServer): Promise<boolean> {
  const stored = (await storedFiles(store, SOURCE))[0];
  return stored !== undefined && stored.bytes.length === readFileSync(incrFile(redis)).length;
}

async function redisWithAof(): Promise<RedisServer> {
  const redis = await startRedis({ args: REDIS7_AOF });
  scope.defer(() => redis.stop());
  return redis;
}

function shipping(redis: RedisServer, to: string, extra: Partial<ShipOptions> = {}) {
  const abort = new AbortController();
  const exit = ship({
    aofDir: redis.dir,
    to,
    name: SOURCE,
    token: TOKEN,
    chunkSize: 1024,
    chunkPause: 2,
    source: redis.url,
    rewriteAt: 'off',
    rewriteTimeout: 60_000,
    logLevel: 'silent',
    signal: abort.signal,
    ...extra,
  });
  scope.defer(async () => {
    abort.abort();
    await exit;
  });
  return { exit, stop: () => abort.abort() };
}

const incrFile = (redis: RedisServer) =>
  path.join(redis.dir, 'appendonlydir', 'appendonly.aof.1.incr.aof');

describe.skipIf(lacks('multi-part AOF'))('rf ship → rf listen --ingest (multi-part AOF)', () => {
  it('ships byte for byte, and loses nothing when the receiver is killed and restarted mid-stream', async () => {
    const redis = await redisWithAof();
    const rx = await receiver();
    const client = await redis.client();
    const load = new WriteLoad(client, 10, 3);
    load.start();
    const shipper = shipping(redis, rx.url);
    await waitFor(() => rx.server.stats().chunksStored >= 5, 'the first chunks at the receiver');

    await rx.kill();
    await sleep(800); // the shipper keeps retrying meanwhile
    await rx.restart();

    await sleep(300);
    const sent = await load.stop();
    await waitFor(() => holdsWholeIncr(rx.store, redis), 'everything at the receiver');
    shipper.stop();
    expect(await shipper.exit).toBe(0);

    const [file] = await storedFiles(rx.store, SOURCE);
    expect(file!.bytes.equals(readFileSync(incrFile(redis)))).toBe(true);
    expect(loadCommands(commandsOf(file!.bytes))).toEqual(WriteLoad.expected(sent));
    const [base] = await storedBases(rx.store, SOURCE);
    expect(
      base!.bytes.equals(readFileSync(path.join(redis.dir, 'appendonlydir', base!.meta.name))),
    ).toBe(true);
    // The receiver knows the source, so `rf info` lists it.
    expect((await rx.store.get(`src/${SOURCE}`)) !== undefined).toBe(true);
  });

  it('accepts a chunk sent twice once, and refuses a wrong token, a tampered chunk and other bytes under a stored id', async () => {
    const redis = await redisWithAof();
    const rx = await receiver();
    const client = await redis.client();
    for (let i = 0; i < 50; i++) await client.call('SET', `k${i}`, 'v');
    const shipper = shipping(redis, rx.url);
    await waitFor(() => holdsWholeIncr(rx.store, redis), 'the incr file at the receiver');
    shipper.stop();
    await shipper.exit;

    const archive = new AofArchive(rx.store);
    const [file] = await storedFiles(rx.store, SOURCE);
    const meta = file!.chunks[1]!;
    const data = await archive.readChunk(SOURCE, meta);
    const before = await aofSummary(rx.store, SOURCE);
    const put = (m: AofChunkMeta, body: Buffer, token = TOKEN, source = SOURCE) =>
      fetch(`${rx.url}/v1/sources/${source}/aof/chunks/${m.fileNo}/${m.start}`, {
        method: 'PUT',
        headers: {
          authorization: `Bearer ${token}`,
          'x-rf-chunk': encodeHeader(m),
          'content-type': 'application/octet-stream',
        },
        body,
      });
    const codeOf = async (res: Response) =>
      ((await res.json()) as { error?: { code: string } }).error?.code;

    // The same chunk again: accepted, stored once.
    const dup = await put(meta, data);
    expect(dup.status).toBe(200);
    expect(await dup.json()).toEqual({ result: 'duplicate' });

    // Other bytes under the same id, with their own correct checksum: refused.
    const other = Buffer.from(data.toString('latin1').replace('k', 'x'), 'latin1');
    const conflict = await put({ ...meta, sha256: sha256(other) }, other);
    expect(conflict.status).toBe(409);
    expect(await codeOf(conflict)).toBe('RF_CHUNK_CONFLICT');

    // A chunk whose bytes changed on the way (the checksum is the sender's): refused.
    await client.call('SET', 'late', 'write');
    const fresh = readFileSync(incrFile(redis)).subarray(file!.record.capturedEnd);
    const freshMeta: AofChunkMeta = {
      ...meta,
      start: file!.record.capturedEnd,
      end: file!.record.capturedEnd + fresh.length,
      sha256: sha256(fresh),
    };
    const tampered = Buffer.from(fresh);
    tampered[tampered.length - 3] = tampered[tampered.length - 3]! ^ 0x20;
    const bad = await put(freshMeta, tampered);
    expect(bad.status).toBe(422);
    expect(await codeOf(bad)).toBe('RF_CHECKSUM');

    // A wrong token: refused before anything is read or stored, for any source.
    const intruder = await put(freshMeta, fresh, 'not-the-token', 'intruder');
    expect(intruder.status).toBe(401);
    expect(await codeOf(intruder)).toBe('RF_AUTH');
    const noAuth = await fetch(`${rx.url}/v1/sources/${SOURCE}/aof/held`);
    expect(noAuth.status).toBe(401);

    const after = await aofSummary(rx.store, SOURCE);
    expect(after).toEqual(before);
    expect((await storedFiles(rx.store, SOURCE))[0]!.bytes.equals(file!.bytes)).toBe(true);
    const keys: string[] = [];
    for await (const [k] of rx.store.entries({ gte: '', lt: '\xff' }))
      if (k.includes('intruder')) keys.push(k);
    expect(keys).toEqual([]);

    // The genuine chunk still goes in afterwards.
    const good = await put(freshMeta, fresh);
    expect(good.status).toBe(201);
  });

  it('exits 3 with RF_AUTH when the receiver refuses the token, storing nothing', async () => {
    const redis = await redisWithAof();
    const rx = await receiver();
    const exit = await ship({
      aofDir: redis.dir,
      to: rx.url,
      name: 'wrongtoken',
      token: 'nope',
      chunkSize: 1024 * 1024,
      chunkPause: 0,
      rewriteTimeout: 60_000,
      logLevel: 'silent',
    });
    expect(exit).toBe(3);
    expect(await new AofArchive(rx.store).files('wrongtoken')).toEqual([]);
  });

  it('ships over TLS to a receiver with its own CA', async () => {
    const dir = await makeTempDir();
    scope.defer(() => removeTempDir(dir));
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const redis = await redisWithAof();
    const rx = await receiver({ cert: readFileSync(cert), key: readFileSync(key) });
    expect(rx.url.startsWith('https://')).toBe(true);
    const client = await redis.client();
    for (let i = 0; i < 20; i++) await client.call('SET', `t${i}`, 'v');
    writeFileSync(path.join(dir, 'token'), `${TOKEN}\n`);
    const shipper = shipping(redis, rx.url, {
      token: undefined,
      tokenFile: path.join(dir, 'token'),
      toCa: cert,
    });
    await waitFor(() => holdsWholeIncr(rx.store, redis), 'the incr file at the receiver');
    shipper.stop();
    expect(await shipper.exit).toBe(0);
  });

  it('never writes the token to a log line, on either side, through retries and refusals', async () => {
    const lines: string[] = [];
    // No redaction configured: the code must never hand the token to the logger at all.
    const log = pino({ level: 'trace' }, { write: (line: string) => lines.push(line) });
    const redis = await redisWithAof();
    const client = await redis.client();
    for (let i = 0; i < 20; i++) await client.call('SET', `t${i}`, 'v');
    const dir = await makeTempDir();
    const store = await Store.open(dir, { create: true });
    scope.defer(async () => {
      await store.close();
      await removeTempDir(dir);
    });
    let ingest = await startIngestServer({ store, listen: '127.0.0.1:0', grants: ANY_SOURCE, log });
    const port = ingest.port;
    await ingest.close(); // down at first: the shipper retries and warns
    const handle = startCapture({
      sink: new HttpSink({
        url: `http://127.0.0.1:${port}`,
        token: TOKEN,
        source: SOURCE,
        log,
        maxRetryDelayMs: 200,
      }),
      source: SOURCE,
      aofDir: redis.dir,
      log,
    });
    await sleep(600);
    ingest = await startIngestServer({
      store,
      listen: `127.0.0.1:${port}`,
      grants: ANY_SOURCE,
      log,
    });
    scope.defer(() => ingest.close());
    const capture = await handle;
    scope.defer(() => capture.stop());
    await waitFor(() => holdsWholeIncr(store, redis), 'shipped');
    // A refused token is logged by the receiver without the token either.
    await fetch(`${ingest.url}/v1/sources/${SOURCE}/aof/held`, {
      headers: { authorization: `Bearer ${TOKEN}-wrong` },
    });

    expect(lines.some((l) => l.includes('retrying'))).toBe(true);
    expect(lines.some((l) => l.includes('ingest request refused'))).toBe(true);
    expect(lines.filter((l) => l.includes(TOKEN))).toEqual([]);
  });
});
