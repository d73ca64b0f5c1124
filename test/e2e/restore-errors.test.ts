import { cp, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Archive } from '../../src/store/archive.js';
import { keys } from '../../src/store/keys.js';
import { Store } from '../../src/store/store.js';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/** Bad input to rf restore: a clear RF_* code, the right exit, and nothing written. */

let master: RedisServer;
let work: string;
let store: string;
let info: {
  restorable: { from: string; until: string }[];
  gaps: { from: string; until: string }[];
};

beforeAll(async () => {
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  work = await makeTempDir('rf-restore-err-');
  store = path.join(work, 'store');
  const d = RfDaemon.start(['--source', master.url, '--store', store, '--flush-interval', '20']);
  await d.waitForLog((l) => l.msg === 'first timeline started from the base');
  const c = await master.client();
  for (let i = 0; i < 20; i++) await c.call('SET', `k${i}`, String(i));
  await caughtUp(master);
  await new Promise((r) => setTimeout(r, 300));
  const before = d.lines.length;
  await master.restart();
  await d.waitForLog((l) => l.msg === 'new timeline after a gap', 30_000, before);
  const c2 = await master.client();
  await c2.call('SET', 'second', 'timeline');
  await caughtUp(master);
  expect((await d.stop()).code).toBe(0);
  const res = await rf(['info', '--store', store, '--json']);
  info = JSON.parse(res.stdout).sources[0];
}, 60_000);

afterAll(async () => {
  await master?.stop();
  if (work) await removeTempDir(work);
});

const restore = (...args: string[]) => rf(['restore', '--store', store, ...args]);

describe('rf restore refuses bad input', () => {
  it('an unparsable time: RF_BAD_TIME, exit 2, listing the accepted forms', async () => {
    const res = await restore('--until', 'yesterday-ish', '--out', path.join(work, 'x1'));
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('RF_BAD_TIME');
    expect(res.stderr).toContain('yesterday-ish');
  });

  it('a time before the archive: RF_TIME_OUT_OF_RANGE, exit 2, with the restorable ranges', async () => {
    const res = await restore(
      '--until',
      '2020-01-01T00:00:00Z',
      '--out',
      path.join(work, 'x2'),
      '--json',
    );
    expect(res.code).toBe(2);
    const err = JSON.parse(res.stdout).error;
    expect(err.code).toBe('RF_TIME_OUT_OF_RANGE');
    expect(err.details.restorable).toEqual(info.restorable);
    expect(res.stderr).toContain('rf info');
  });

  it('a time after the last captured write: RF_TIME_OUT_OF_RANGE', async () => {
    const res = await restore('--until', '2099-01-01T00:00:00Z', '--dry-run');
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('RF_TIME_OUT_OF_RANGE');
  });

  it('a time inside the gap between timelines: RF_TIME_IN_GAP, exit 2, naming the gap', async () => {
    expect(info.gaps).toHaveLength(1);
    const gap = info.gaps[0]!;
    const mid = (Date.parse(gap.from) + Date.parse(gap.until)) / 2;
    const res = await restore(
      '--until',
      new Date(mid).toISOString(),
      '--out',
      path.join(work, 'x3'),
      '--json',
    );
    expect(res.code).toBe(2);
    const err = JSON.parse(res.stdout).error;
    expect(err.code).toBe('RF_TIME_IN_GAP');
    expect(err.details.gap.from).toBe(gap.from);
  });

  it('a target that holds keys: RF_TARGET_NOT_EMPTY, exit 2, and the target is untouched', async () => {
    const target = await startRedis();
    try {
      const c = await target.client();
      await c.call('SET', 'precious', 'data');
      const res = await restore('--until', 'latest', '--target', target.url);
      expect(res.code).toBe(2);
      expect(res.stderr).toContain('RF_TARGET_NOT_EMPTY');
      expect(await c.call('GET', 'precious')).toBe('data');
      expect(await c.call('DBSIZE')).toBe(1);
      expect((await c.info('replication')).role).toBe('master');
    } finally {
      await target.stop();
    }
  });

  it('an unreachable target: RF_CONNECT, exit 3', async () => {
    const port = await freePort();
    const res = await restore('--until', 'latest', '--target', `redis://127.0.0.1:${port}`);
    expect(res.code).toBe(3);
    expect(res.stderr).toContain('RF_CONNECT');
  });

  it('a non-empty --out directory: RF_OUT_DIR_NOT_EMPTY, exit 2, and its files are untouched', async () => {
    const out = path.join(work, 'used');
    await mkdir(out);
    await writeFile(path.join(out, 'keep.txt'), 'mine');
    const res = await restore('--until', 'latest', '--out', out);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('RF_OUT_DIR_NOT_EMPTY');
    const { readdir, readFile } = await import('node:fs/promises');
    expect(await readdir(out)).toEqual(['keep.txt']);
    expect(await readFile(path.join(out, 'keep.txt'), 'utf8')).toBe('mine');
  });

  it('a missing store: RF_STORE_MISSING, exit 3', async () => {
    const res = await rf([
      'restore',
      '--store',
      path.join(work, 'nope'),
      '--until',
      'latest',
      '--out',
      path.join(work, 'x4'),
    ]);
    expect(res.code).toBe(3);
    expect(res.stderr).toContain('RF_STORE_MISSING');
  });

  it('a segment whose checksum fails: exit 4, RF_CHECKSUM naming rf verify, and no output left', async () => {
    const copy = path.join(work, 'damaged');
    await cp(store, copy, { recursive: true });
    const s = await Store.open(copy, { create: false });
    try {
      const archive = new Archive(s);
      const seg = await archive.segmentAtOffset('default', 1, 1);
      expect(seg).toBeDefined();
      const key = keys.data('default', 1, seg!.start);
      const data = Buffer.from((await s.get(key))!);
      data[data.length - 2]! ^= 0x10;
      await s.batch([{ type: 'put', key, value: data }]);
    } finally {
      await s.close();
    }
    const out = path.join(work, 'x5');
    const res = await rf([
      'restore',
      '--store',
      copy,
      '--until',
      info.restorable[0]!.until,
      '--out',
      out,
    ]);
    expect(res.code).toBe(4);
    expect(res.stderr).toContain('RF_CHECKSUM');
    expect(res.stderr).toContain('rf verify');
    const { existsSync } = await import('node:fs');
    expect(existsSync(out)).toBe(false);
  });
});
