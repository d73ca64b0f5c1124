import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAofCapture, startCapture } from '../../src/aof/index.js';
import type { Manifest } from '../../src/aof/manifest.js';
import { LocalSink } from '../../src/aof/sink.js';
import type { RedisClient } from '../../src/resp/client.js';
import { AofArchive } from '../../src/store/chunks.js';
import { Store } from '../../src/store/store.js';
import { aofSummary } from '../../src/store/summary.js';
import {
  commandsOf,
  loadCommands,
  quiet,
  REDIS7_AOF,
  RecordingSink,
  storedBases,
  storedFiles,
} from '../helpers/aof.js';
import { WriteLoad, waitFor } from '../helpers/load.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { lacks } from '../helpers/redis-bin.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const SOURCE = 'cache';

interface Rig {
  redis: RedisServer;
  client: RedisClient;
  store: Store;
  storeDir: string;
  appendDir: string;
}

const scope = testScope();

async function rig(extraArgs: string[] = []): Promise<Rig> {
  const redis = await startRedis({ args: [...REDIS7_AOF, ...extraArgs] });
  scope.defer(() => redis.stop());
  const storeDir = await makeTempDir('rf-aof-store-');
  const store = await Store.open(storeDir, { create: true });
  scope.defer(async () => {
    await store.close();
    await removeTempDir(storeDir);
  });
  const client = await redis.client();
  return { redis, client, store, storeDir, appendDir: path.join(redis.dir, 'appendonlydir') };
}

function endpoint(redis: RedisServer) {
  return { endpoint: { host: redis.host, port: redis.port, db: 0, tls: false }, url: redis.url };
}

async function rewriteAndWait(client: RedisClient): Promise<void> {
  const before = Number((await client.info('persistence')).aof_rewrites);
  await client.call('BGREWRITEAOF');
  await waitFor(async () => {
    const info = await client.info('persistence');
    return (
      info.aof_rewrite_in_progress === '0' &&
      info.aof_rewrite_scheduled === '0' &&
      Number(info.aof_rewrites) > before
    );
  }, 'BGREWRITEAOF to finish');
}

/** Makes the next rewrite take about `seconds`: rdb-key-save-delay is per key, in microseconds. */
async function slowRewrites(client: RedisClient, seconds: number): Promise<void> {
  const keys = Number(await client.call('DBSIZE'));
  await client.call(
    'CONFIG',
    'SET',
    'rdb-key-save-delay',
    String(Math.ceil((seconds * 1e6) / Math.max(keys, 1))),
  );
}

describe.skipIf(lacks('multi-part AOF'))(
  'AOF capture from a real Redis 7 (multi-part appendonlydir)',
  () => {
    it('stores every incr file byte for byte across three rewrite cycles, one slow enough to show the in-between manifest', async () => {
      const { redis, client, store, appendDir } = await rig(['--aof-disable-auto-gc', 'yes']);
      const handle = await startAofCapture({
        store,
        source: SOURCE,
        aofDir: redis.dir,
        chunkSize: 4096,
        chunkPauseMs: 0,
        lingerMs: 20,
        pollMs: 20,
        sizeSampleMs: 50,
        rewriteAt: 'off',
        redis: endpoint(redis),
        log: quiet,
      });
      scope.defer(() => handle.stop());
      const manifests: Manifest[] = [];
      handle.capture.on('manifest', (m) => manifests.push(m));

      const load = new WriteLoad(client, 20, 2);
      load.start();
      for (let cycle = 1; cycle <= 3; cycle++) {
        await load.more(100);
        if (cycle === 2) await slowRewrites(client, 1);
        const result = await handle.rewriteNow();
        expect(result.base.name).toMatch(/\.base\.rdb$/);
        if (cycle === 2) await client.call('CONFIG', 'SET', 'rdb-key-save-delay', '0');
      }
      await load.more(100);
      const sent = await load.stop();
      await handle.capture.drain();

      // The in-between manifest: two incr files listed while the slow rewrite ran.
      expect(manifests.some((m) => m.incrs.length >= 2)).toBe(true);

      const files = await storedFiles(store, SOURCE);
      expect(files.map((f) => f.record.seq)).toEqual([1, 2, 3, 4]);
      for (const f of files) {
        // aof-disable-auto-gc keeps every incr file on disk: compare byte for byte.
        expect(
          f.bytes.equals(readFileSync(path.join(appendDir, f.record.name))),
          f.record.name,
        ).toBe(true);
        expect(f.record.ended === null).toBe(f.record.seq === 4);
      }
      const bases = await storedBases(store, SOURCE);
      expect(bases.map((b) => b.meta.seq)).toEqual([1, 2, 3, 4]);
      for (const b of bases) {
        expect(b.bytes.equals(readFileSync(path.join(appendDir, b.meta.name))), b.meta.name).toBe(
          true,
        );
        expect(b.meta.format).toBe('rdb');
      }
      // Each base is a restore starting point: the incr file written from its fork on follows it.
      const fileNoBySeq = new Map(files.map((f) => [f.record.seq, f.record.fileNo]));
      for (const b of bases) expect(b.meta.firstFileNo).toBe(fileNoBySeq.get(b.meta.seq));

      const commands = loadCommands(files.flatMap((f) => commandsOf(f.bytes)));
      expect(commands).toEqual(WriteLoad.expected(sent));

      const summary = await aofSummary(store, SOURCE);
      expect(summary.chunks).toBe(files.reduce((n, f) => n + f.chunks.length, 0));
      expect(summary.bytes).toBe(files.reduce((n, f) => n + f.bytes.length, 0));
      expect(summary.bases).toBe(4);
      expect(summary.sizeBytes).toBeGreaterThan(0);
      expect(summary.gaps).toEqual([]);
    });

    it('loses and repeats nothing when Redis deletes history files the capture has not finished', async () => {
      const { redis, client, store } = await rig();
      const sink = new RecordingSink(new LocalSink(store, SOURCE, redis.url));
      // Slow delivery: the capture lags behind the writes, so Redis deletes an old incr file (after
      // the rewrite) while the capture is still reading it through its open descriptor.
      sink.delayMs = 15;
      const handle = await startCapture({
        sink,
        source: SOURCE,
        aofDir: redis.dir,
        chunkSize: 2048,
        lingerMs: 10,
        pollMs: 10,
        log: quiet,
      });
      scope.defer(() => handle.stop());
      const endedAfterDeletion: string[] = [];
      handle.capture.on('file-ended', (r) => {
        if (!existsSync(path.join(redis.dir, 'appendonlydir', r.name)))
          endedAfterDeletion.push(r.name);
      });

      const load = new WriteLoad(client, 20, 1);
      load.start();
      for (let cycle = 1; cycle <= 3; cycle++) {
        await load.more(100);
        if (cycle === 3) await slowRewrites(client, 0.8);
        await rewriteAndWait(client);
      }
      const sent = await load.stop();
      sink.delayMs = 0;
      await handle.capture.drain();

      expect(endedAfterDeletion.length).toBeGreaterThan(0);
      const files = await storedFiles(store, SOURCE);
      expect(files.map((f) => f.record.seq)).toEqual([1, 2, 3, 4]);
      expect(loadCommands(files.flatMap((f) => commandsOf(f.bytes)))).toEqual(
        WriteLoad.expected(sent),
      );
      expect((await new AofArchive(store).gaps(SOURCE)).length).toBe(0);
    });

    it('keeps the shipping rate at or under chunk-size / chunk-pause', async () => {
      const S = 2048;
      const P = 40;
      const { redis, client, store } = await rig();
      // About 60 KiB of commands, each far smaller than S, written before the capture starts.
      const value = 'v'.repeat(200);
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < 260; i++) calls.push(client.call('SET', `k:${i}`, value));
      await Promise.all(calls);
      const sink = new RecordingSink(new LocalSink(store, SOURCE, redis.url));
      const handle = await startCapture({
        sink,
        source: SOURCE,
        aofDir: redis.dir,
        chunkSize: S,
        chunkPauseMs: P,
        log: quiet,
        pollMs: 10,
      });
      scope.defer(() => handle.stop());
      // Redis write()s the AOF before it replies: the file is complete once the SETs are answered.
      const size = statSync(path.join(appendDirOf(redis), 'appendonly.aof.1.incr.aof')).size;
      await waitFor(
        async () => (await storedFiles(store, SOURCE)).some((f) => f.bytes.length === size),
        'the incr file stored',
        30_000,
      );

      const sends = sink.sends;
      expect(sends.length).toBeGreaterThan(20);
      const gaps = sends.slice(1).map((s, i) => s.at - sends[i]!.at);
      for (const s of sends) expect(s.bytes).toBeLessThanOrEqual(S);
      // Every gap between two sends is at least the pause, measured on the same monotonic clock…
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(P);
      // …so the rate over any run of sends is at most S / P (bytes per ms).
      const bytes = sends.slice(0, -1).reduce((n, s) => n + s.bytes, 0);
      const rate = bytes / (sends.at(-1)!.at - sends[0]!.at);
      expect(rate).toBeLessThanOrEqual(S / P);
      console.log(
        `throttle: ${sends.length} sends (${sends.filter((s) => s.kind === 'base').length} base pieces), min gap ${Math.min(...gaps).toFixed(1)} ms (P=${P}), rate ${((rate * 1000) / 1024).toFixed(1)} KiB/s, bound S/P ${(((S / P) * 1000) / 1024).toFixed(1)} KiB/s`,
      );
    });

    it('resumes where the store ends after the capture restarts, storing nothing twice', async () => {
      const { redis, client, store, appendDir } = await rig();
      const start = () =>
        startAofCapture({
          store,
          source: SOURCE,
          aofDir: redis.dir,
          chunkSize: 1024,
          lingerMs: 10,
          pollMs: 10,
          log: quiet,
        });
      const load = new WriteLoad(client, 10, 2);
      load.start();
      const first = await start();
      await waitFor(
        async () => (await storedFiles(store, SOURCE)).some((f) => f.bytes.length > 0),
        'the first capture to store some of the incr file',
      );
      await load.more(100);
      await first.stop();
      // Writes while no capture runs: the second must pick them up where the store ends.
      await load.more(100);
      const second = await start();
      scope.defer(() => second.stop());
      await load.more(100);
      const sent = await load.stop();
      await second.capture.drain();

      const files = await storedFiles(store, SOURCE);
      expect(files).toHaveLength(1);
      expect(
        files[0]!.bytes.equals(readFileSync(path.join(appendDir, files[0]!.record.name))),
      ).toBe(true);
      expect(loadCommands(commandsOf(files[0]!.bytes))).toEqual(WriteLoad.expected(sent));
      expect(second.status().duplicates).toBe(0);
      expect((await storedBases(store, SOURCE)).length).toBe(1);
    });

    it('records a gap for an incr file Redis deleted before a stopped capture finished it', async () => {
      const { redis, client, store } = await rig();
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < 300; i++) calls.push(client.call('SET', `k${i}`, 'v'.repeat(100)));
      await Promise.all(calls);
      // A slow capture stores a few chunks of incr 1, then stops.
      const sink = new RecordingSink(new LocalSink(store, SOURCE, redis.url));
      const first = await startCapture({
        sink,
        source: SOURCE,
        aofDir: redis.dir,
        chunkSize: 1024,
        chunkPauseMs: 20,
        log: quiet,
      });
      await waitFor(() => sink.sends.filter((s) => s.kind === 'chunk').length >= 3, 'a few chunks');
      await first.stop();
      // While it is stopped, a rewrite makes incr 1 history, and Redis deletes it.
      await rewriteAndWait(client);
      await client.call('SET', 'after', 'rewrite');
      const second = await startAofCapture({
        store,
        source: SOURCE,
        aofDir: redis.dir,
        lingerMs: 10,
        pollMs: 10,
        log: quiet,
      });
      scope.defer(() => second.stop());
      await second.capture.drain();

      const [old, current] = await storedFiles(store, SOURCE);
      expect(old!.record.ended).toEqual({ at: expect.any(Number), size: old!.record.capturedEnd });
      const gaps = await new AofArchive(store).gaps(SOURCE);
      expect(gaps).toEqual([
        expect.objectContaining({
          fileNo: old!.record.fileNo,
          start: old!.record.capturedEnd,
          end: null,
          reason: 'file-deleted',
        }),
      ]);
      expect(
        current!.bytes.equals(readFileSync(path.join(appendDirOf(redis), current!.record.name))),
      ).toBe(true);
      expect((await aofSummary(store, SOURCE)).gaps).toHaveLength(1);
    });
  },
);

const appendDirOf = (redis: RedisServer) => path.join(redis.dir, 'appendonlydir');
