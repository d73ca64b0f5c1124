import { cp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Archive } from '../../src/store/archive.js';
import { keys } from '../../src/store/keys.js';
import { Store } from '../../src/store/store.js';
import type { SegmentMeta } from '../../src/store/types.js';
import { rf } from '../helpers/rf.js';
import { ArchiveBuilder } from '../helpers/stream-archive.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/** The rf verify command line: exit codes, the text a person reads, bad input. */

const T0 = Date.parse('2026-11-24T12:00:00.000Z');
let work: string;
let store: string;
let segments: SegmentMeta[];

beforeAll(async () => {
  work = await makeTempDir('rf-verify-e2e-');
  store = path.join(work, 'store');
  const b = await ArchiveBuilder.create(store, { startedAt: T0, maxSegmentBytes: 300 });
  try {
    await b.add(['SELECT', '0'], T0 + 1);
    for (let i = 0; i < 100; i++) await b.add(['SET', `k:${i}`, String(i)], T0 + 10 + i * 100);
    await b.flush();
    segments = [];
    for await (const m of new Archive(b.store).segments('default', 1)) segments.push(m);
  } finally {
    await b.close();
  }
});

afterAll(async () => {
  if (work) await removeTempDir(work);
});

describe('rf verify, the command line', () => {
  it('a whole archive: exit 0 and a last line saying so', async () => {
    const res = await rf(['verify', '--store', store]);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('source default');
    expect(res.stdout).toMatch(/^ {2}timeline 1 {2}2026-11-24T12:00:00\.000Z \.\. \S+Z$/m);
    expect(res.stdout).toMatch(/^checked \d+ segments \([\d.]+ KiB, 101 commands\), 1 bases/m);
    expect(res.stdout).toMatch(/the archive is whole\n$/);
  });

  it('damage: exit 1, each problem with its code, location, time range and what it means', async () => {
    const copy = path.join(work, 'damaged');
    await cp(store, copy, { recursive: true });
    const seg = segments[4]!;
    const s = await Store.open(copy, { create: false });
    try {
      const key = keys.data('default', 1, seg.start);
      const data = Buffer.from((await s.get(key))!);
      data[data.length - 1]! ^= 0x01;
      await s.batch([{ type: 'put', key, value: data }]);
    } finally {
      await s.close();
    }
    const res = await rf(['verify', '--store', copy]);
    expect(res.code).toBe(1);
    const lines = res.stdout.split('\n');
    const at = lines.indexOf(
      `  segment-checksum  default / timeline 1 / offsets ${seg.start}..${seg.end}`,
    );
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 1]).toBe(
      `      ${new Date(seg.firstTime).toISOString()} .. ${new Date(seg.lastTime).toISOString()}`,
    );
    expect(lines[at + 2]).toMatch(/does not match its checksum/);
    expect(res.stdout).toMatch(/1 problem found: a restore that needs a damaged part is refused/);

    const json = await rf(['verify', '--store', copy, '--json']);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout);
    expect(report).toMatchObject({ ok: true, clean: false, problems: 1 });
    expect(report.sources[0].problems[0]).toMatchObject({
      code: 'segment-checksum',
      source: 'default',
      where: { timeline: 1, offsets: { from: seg.start, until: seg.end } },
    });
  });

  it('a LevelDB that will not open at all: exit 4, RF_CORRUPT', async () => {
    const copy = path.join(work, 'unreadable');
    await cp(store, copy, { recursive: true });
    await writeFile(path.join(copy, 'db', 'CURRENT'), 'MANIFEST-999999\n');
    const res = await rf(['verify', '--store', copy]);
    expect(res.code).toBe(4);
    expect(res.stderr).toContain('RF_CORRUPT');
    expect(res.stderr).toContain('cannot be read at all');
  });

  it('data for a source whose record is gone: source-missing, and its data is still checked', async () => {
    const copy = path.join(work, 'no-source');
    await cp(store, copy, { recursive: true });
    const s = await Store.open(copy, { create: false });
    try {
      await s.batch([{ type: 'del', key: keys.source('default') }]);
    } finally {
      await s.close();
    }
    const res = await rf(['verify', '--store', copy, '--json']);
    expect(res.code).toBe(1);
    const report = JSON.parse(res.stdout);
    expect(report.sources[0].problems.map((p: { code: string }) => p.code)).toEqual([
      'source-missing',
    ]);
    expect(report.checked.segments).toBe(segments.length);
  });

  it('a missing store: exit 3, RF_STORE_MISSING; an unknown --name: exit 2', async () => {
    const missing = await rf(['verify', '--store', path.join(work, 'nope')]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('RF_STORE_MISSING');
    const unknown = await rf(['verify', '--store', store, '--name', 'other']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('RF_UNKNOWN_SOURCE');
    expect(unknown.stderr).toContain('rf info');
  });
});
