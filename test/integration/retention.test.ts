import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import type { RedisClient } from '../../src/resp/client.js';
import { pruneArchive } from '../../src/retention/prune.js';
import { Archive } from '../../src/store/archive.js';
import { type BatchOp, Store } from '../../src/store/store.js';
import { dumpArchive } from '../helpers/archive.js';
import { waitFor } from '../helpers/load.js';
import { bootedDigest, type RedisServer, startRedis } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * Retention under a simulated clock: pruneArchive is given the window's start directly, as
 * `rf listen --retain` computes it from now. It must keep exactly what restores inside the
 * window need, survive a crash between its batches, and leave an archive that reads whole.
 */
let master: RedisServer;
let client: RedisClient;
let work: string;
let store: string;
const cps: { at: number; digest: string }[] = [];
let tl1LastWrite = 0;

async function checkpoint(): Promise<void> {
  await caughtUp(master);
  cps.push({ at: Date.now(), digest: String(await client.call('DEBUG', 'DIGEST')) });
  await new Promise((r) => setTimeout(r, 5));
}

async function writeFor(ms: number, tag: string): Promise<void> {
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end; i++) {
    await client.call('SET', `${tag}:${i % 50}`, String(i));
    await client.call('RPUSH', `${tag}:list`, String(i));
    await new Promise((r) => setTimeout(r, 3));
  }
}

beforeAll(async () => {
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  client = await master.client();
  work = await makeTempDir('rf-retention-');
  store = path.join(work, 'store');
  const d = RfDaemon.start([
    '--source',
    master.url,
    '--store',
    store,
    '--flush-interval',
    '20',
    '--segment-size',
    '2k',
    '--base-every',
    '700ms',
  ]);
  await d.waitForLog((l) => l.msg === 'first timeline started from the base');
  await writeFor(500, 'old');
  await caughtUp(master);
  tl1LastWrite = Date.now();
  const before = d.lines.length;
  await master.restart();
  client = await master.client();
  await d.waitForLog((l) => l.msg === 'new timeline after a gap', 30_000, before);
  for (const tag of ['a', 'b', 'c']) {
    await writeFor(1500, tag);
    await checkpoint();
  }
  // No write follows the last checkpoint: the archive still covers it once rf has seen the
  // idle master's offset equal to what is durable.
  const last = cps[cps.length - 1]!.at;
  await waitFor(
    async () => {
      const info = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout).sources[0];
      return Date.parse(info.restorable[info.restorable.length - 1].until) >= last;
    },
    'the restorable range to reach the last checkpoint',
    10_000,
    250,
  );
  expect((await d.stop()).code).toBe(0);
}, 90_000);

afterAll(async () => {
  await master?.stop();
  if (work) await removeTempDir(work);
});

async function restoreDigest(dir: string, at: number, name: string): Promise<string> {
  const out = path.join(work, name);
  const res = await rf(['restore', '--store', dir, '--until', `@${at / 1000}`, '--out', out]);
  expect(res.code, res.stderr).toBe(0);
  return bootedDigest(out);
}

describe('retention', () => {
  it('a crash between batches leaves an archive that reads whole; the next run finishes the job', async () => {
    const crashed = path.join(work, 'crashed');
    const { cp } = await import('node:fs/promises');
    await cp(store, crashed, { recursive: true });
    const s = await Store.open(crashed, { create: false });
    let batches = 0;
    const realBatch = s.batch.bind(s);
    // A kill -9 can only land between two batches: each one is atomic in LevelDB.
    s.batch = async (ops: BatchOp[]) => {
      if (++batches === 3) throw new Error('simulated crash');
      return realBatch(ops);
    };
    await expect(pruneArchive(s, 'default', cps[1]!.at, 60_000, silentLogger())).rejects.toThrow(
      'simulated crash',
    );
    await s.close();
    // Whatever was left reads back contiguous, and a restore inside the window still works.
    const partial = await dumpArchive(crashed);
    expect(partial.timelines.length).toBeGreaterThanOrEqual(1);
    expect(await restoreDigest(crashed, cps[2]!.at, 'crash-c')).toBe(cps[2]!.digest);

    const s2 = await Store.open(crashed, { create: false });
    await pruneArchive(s2, 'default', cps[1]!.at, 60_000, silentLogger());
    await s2.close();
    await dumpArchive(crashed);
    expect(await restoreDigest(crashed, cps[1]!.at, 'crash-b')).toBe(cps[1]!.digest);
  });

  it('keeps exactly what the window needs: the window start restores, before it is refused', async () => {
    const s = await Store.open(store, { create: false });
    const before = await new Archive(s).bases('default');
    const windowStart = cps[1]!.at;
    const result = await pruneArchive(s, 'default', windowStart, 60_000, silentLogger());
    const archive = new Archive(s);
    const timelines = await archive.timelines('default');
    const bases = await archive.bases('default');
    await s.close();

    // The timeline that ended before the window is gone, bases and all.
    expect(result.timelinesDropped).toBe(1);
    expect(timelines.map((t) => t.id)).toEqual([2]);
    expect(bases.every((b) => b.timeline === 2)).toBe(true);
    // Exactly one base at or before the window start is left: the one a restore to it uses.
    const kept = bases.filter((b) => b.takenAt <= windowStart);
    expect(kept).toHaveLength(1);
    expect(bases.length).toBeLessThan(before.length);
    expect(result.segmentsDeleted).toBeGreaterThan(0);
    const files = await readdir(path.join(store, 'bases', 'default'));
    expect(files.sort()).toEqual(bases.map((b) => path.basename(b.file)).sort());

    // Everything kept reads back contiguous from where retention cut.
    await dumpArchive(store);
    expect(await restoreDigest(store, windowStart, 'window-start')).toBe(cps[1]!.digest);
    expect(await restoreDigest(store, cps[2]!.at, 'after-window')).toBe(cps[2]!.digest);

    const info = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout).sources[0];
    const from = Date.parse(info.restorable[0].from);
    expect(from).toBeLessThanOrEqual(windowStart);
    expect(cps[0]!.at).toBeLessThan(from);
    for (const t of [from - 1, cps[0]!.at, tl1LastWrite]) {
      const res = await rf([
        'restore',
        '--store',
        store,
        '--until',
        `@${t / 1000}`,
        '--dry-run',
        '--json',
      ]);
      expect(res.code).toBe(2);
      const err = JSON.parse(res.stdout).error;
      expect(err.code).toBe('RF_TIME_OUT_OF_RANGE');
      expect(err.details.restorable[0].from).toBe(info.restorable[0].from);
    }
  });
});
