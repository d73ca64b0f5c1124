import { cp, readFile, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { Archive } from '../../src/store/archive.js';
import { keys } from '../../src/store/keys.js';
import { Store } from '../../src/store/store.js';
import type { BaseMeta, SegmentMeta } from '../../src/store/types.js';
import { WriteLoad, waitFor } from '../helpers/load.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * rf verify against an archive rf listen captured from a real redis-server: a long load with a
 * listener restart in the middle verifies clean (while rf listen runs, and after); then each kind
 * of damage, made on a copy, is found with the right location and time range, and a restore
 * across it is refused.
 */

const SRC = 'default';
let master: RedisServer;
let client: RedisClient;
let work: string;
let store: string;
let whileRunning: { code: number | null; report: VerifyJson };
let segments: SegmentMeta[];
let base: BaseMeta;
let restorableUntil: string;
/** The copy with a segment deleted, shared by the verify and the restore test of it. */
let deletedSegmentCopy: string;

interface VerifyJson {
  clean: boolean;
  problems: number;
  sources: {
    name: string;
    timelines: { id: number; firstOffset: number; durableOffset: number }[];
    problems: {
      code: string;
      where: { timeline?: number; offsets?: { from: number; until: number }; file?: string };
      time: { from: string; until: string } | null;
      message: string;
    }[];
  }[];
  checked: { segments: number; entries: number; bases: number };
}

function listen(): RfDaemon {
  return RfDaemon.start([
    '--source',
    master.url,
    '--store',
    store,
    '--flush-interval',
    '20',
    '--segment-size',
    '16k',
  ]);
}

async function verifyJson(dir: string): Promise<{ code: number | null; report: VerifyJson }> {
  const res = await rf(['verify', '--store', dir, '--json']);
  return { code: res.code, report: JSON.parse(res.stdout) as VerifyJson };
}

/** A copy of the clean store to damage. */
async function copyStore(name: string): Promise<string> {
  const copy = path.join(work, name);
  await cp(store, copy, { recursive: true });
  return copy;
}

async function withStore(dir: string, f: (s: Store) => Promise<void>): Promise<void> {
  const s = await Store.open(dir, { create: false });
  try {
    await f(s);
  } finally {
    await s.close();
  }
}

/** `rf restore --dry-run` to the end of the archive: every segment and the base are read. */
function restoreAcross(dir: string) {
  return rf(['restore', '--store', dir, '--until', restorableUntil, '--dry-run']);
}

beforeAll(async () => {
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  client = await master.client();
  for (let i = 0; i < 300; i++) await client.call('SET', `before:${i}`, 'x'.repeat(50));
  work = await makeTempDir('rf-verify-');
  store = path.join(work, 'store');
  let d = listen();
  await d.waitForLog((l) => l.msg === 'first timeline started from the base');
  const load = new WriteLoad(client);
  load.start();
  await waitFor(() => load.sent > 3000, 'the load to get going');
  // A listener restart in the middle of the load: the archive resumes with +CONTINUE.
  expect((await d.stop()).code).toBe(0);
  d = listen();
  await d.waitForLog((l) => l.msg.startsWith('partial resync accepted (+CONTINUE)'));
  await waitFor(() => load.sent > 8000, 'more load after the restart');
  // Verified through the running daemon, while it appends.
  whileRunning = await verifyJson(store);
  await load.stop();
  await caughtUp(master);
  expect((await d.stop()).code).toBe(0);

  await withStore(store, async (s) => {
    const archive = new Archive(s);
    segments = [];
    for await (const m of archive.segments(SRC, 1)) segments.push(m);
    base = (await archive.bases(SRC))[0]!;
  });
  const info = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout);
  restorableUntil = info.sources[0].restorable[0].until;
}, 90_000);

afterAll(async () => {
  await master?.stop();
  if (work) await removeTempDir(work);
});

describe('rf verify on a clean archive', () => {
  it('verifies clean while rf listen runs on the store', () => {
    expect(whileRunning.code).toBe(0);
    expect(whileRunning.report.clean).toBe(true);
    expect(whileRunning.report.checked.segments).toBeGreaterThan(5);
  });

  it('a long load with a listener restart in the middle verifies clean: one timeline, every byte read', async () => {
    const { code, report } = await verifyJson(store);
    expect(code).toBe(0);
    expect(report.problems).toBe(0);
    const [tl] = report.sources[0]!.timelines;
    expect(report.sources[0]!.timelines).toHaveLength(1);
    expect(report.checked.segments).toBe(segments.length);
    expect(segments.length).toBeGreaterThan(20);
    expect(tl!.durableOffset).toBe(segments[segments.length - 1]!.end);
    // 8000+ load iterations, two writes each, plus PINGs and SELECT.
    expect(report.checked.entries).toBeGreaterThan(16_000);
    expect(report.checked.bases).toBe(1);
  });

  it('the text report says the archive is whole', async () => {
    const res = await rf(['verify', '--store', store]);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('no problems');
    expect(res.stdout).toMatch(/the archive is whole\n$/);
  });
});

describe('rf verify finds each damage, and a restore across it is refused', () => {
  it('a flipped bit in a segment value', async () => {
    const copy = await copyStore('flip-segment');
    const seg = segments[Math.floor(segments.length / 2)]!;
    await withStore(copy, async (s) => {
      const key = keys.data(SRC, 1, seg.start);
      const data = Buffer.from((await s.get(key))!);
      data[Math.floor(data.length / 2)]! ^= 0x08;
      await s.batch([{ type: 'put', key, value: data }]);
    });
    const { code, report } = await verifyJson(copy);
    expect(code).toBe(1);
    expect(report.sources[0]!.problems).toEqual([
      expect.objectContaining({
        code: 'segment-checksum',
        where: { timeline: 1, offsets: { from: seg.start, until: seg.end } },
        time: {
          from: new Date(seg.firstTime).toISOString(),
          until: new Date(seg.lastTime).toISOString(),
        },
      }),
    ]);
    const restore = await restoreAcross(copy);
    expect(restore.code).toBe(4);
    expect(restore.stderr).toContain('RF_CHECKSUM');
  });

  it('a deleted segment', async () => {
    const copy = await copyStore('deleted-segment');
    const i = Math.floor(segments.length / 3);
    const [before, gone, after] = [segments[i - 1]!, segments[i]!, segments[i + 1]!];
    await withStore(copy, (s) =>
      s.batch([
        { type: 'del', key: keys.segment(SRC, 1, gone.start) },
        { type: 'del', key: keys.data(SRC, 1, gone.start) },
        { type: 'del', key: keys.time(SRC, 1, gone.lastTime, gone.start) },
      ]),
    );
    const { code, report } = await verifyJson(copy);
    expect(code).toBe(1);
    expect(report.sources[0]!.problems).toEqual([
      expect.objectContaining({
        code: 'offsets-missing',
        where: { timeline: 1, offsets: { from: gone.start, until: gone.end } },
        time: {
          from: new Date(before.lastTime).toISOString(),
          until: new Date(after.firstTime).toISOString(),
        },
      }),
    ]);
    deletedSegmentCopy = copy;
  });

  // Kept apart: it fails while the stream replay (src/restore/replay.ts) steps over a missing
  // segment instead of refusing, which is a restore bug, not a verify one.
  it('a restore across the deleted segment is refused', async () => {
    const restore = await restoreAcross(deletedSegmentCopy);
    expect(restore.code).toBe(4);
    expect(restore.stderr).toMatch(/RF_CORRUPT|RF_CHECKSUM/);
  });

  it('a flipped bit in the base file', async () => {
    const copy = await copyStore('flip-base');
    const file = path.join(copy, base.file);
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x40;
    await writeFile(file, bytes);
    const { code, report } = await verifyJson(copy);
    expect(code).toBe(1);
    const [p] = report.sources[0]!.problems;
    expect(report.sources[0]!.problems).toHaveLength(1);
    expect(p).toMatchObject({
      code: 'base-checksum',
      where: { timeline: 1, file: base.file, offsets: { from: base.offset, until: base.offset } },
      time: { from: new Date(base.takenAt).toISOString() },
    });
    // The RDB's own CRC64 catches it too, independently of the sha256 rf recorded.
    expect(p!.message).toContain('RDB checksum mismatch');
    const restore = await restoreAcross(copy);
    expect(restore.code).toBe(4);
    expect(restore.stderr).toContain('RF_CHECKSUM');
  });

  it('a truncated base', async () => {
    const copy = await copyStore('truncated-base');
    await truncate(path.join(copy, base.file), Math.floor(base.bytes / 2));
    const { code, report } = await verifyJson(copy);
    expect(code).toBe(1);
    expect(report.sources[0]!.problems).toEqual([
      expect.objectContaining({
        code: 'base-truncated',
        where: expect.objectContaining({
          file: base.file,
          bytes: { from: Math.floor(base.bytes / 2), until: base.bytes },
        }),
      }),
    ]);
    expect(report.sources[0]!.problems[0]!.message).toContain('truncated');
    const restore = await restoreAcross(copy);
    expect(restore.code).toBe(4);
    expect(restore.stderr).toContain('RF_CHECKSUM');
  });
});
