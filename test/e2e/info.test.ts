import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { formatInZone } from '../../src/time.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * `rf info` as a person reads it, from the real CLI: two timelines with the gap between them,
 * the restorable ranges, capture lag while rf listen runs, the activity sparkline, sizes; every
 * line within 80 columns. Then the --json fields DESIGN.md promises.
 */

let master: RedisServer;
let client: RedisClient;
let work: string;
let store: string;
let daemon: RfDaemon;
/** Taken while rf listen runs (lag, daemon), and after it stopped (a view that no longer moves). */
let running: { stdout: string; json: InfoJson };
let stopped: { stdout: string; json: InfoJson };

async function info(): Promise<{ stdout: string; json: InfoJson }> {
  const text = await rf(['info', '--store', store, '--tz', 'Europe/Paris']);
  expect(text.code, text.stderr).toBe(0);
  const json = await rf(['info', '--store', store, '--json']);
  return { stdout: text.stdout, json: JSON.parse(json.stdout) as InfoJson };
}

interface InfoJson {
  onDisk: number;
  sources: {
    name: string;
    timelines: { replid: string; from: string; until: string; durableOffset: number }[];
    gaps: { from: string; until: string; reason: string; aof: boolean }[];
    imprecise: { from: string; until: string; offsets: [number, number]; precision: string }[];
    restorable: { from: string; until: string }[];
    aof: { chunks: number; bytes: number; lastChunkAt: string | null };
    lastWrite: string | null;
    lastCapture: string | null;
    sizes: { stream: number; bases: number; total: number };
    lag: { phase: string; behindBytes: number | null; durableOffset: number | null } | null;
    activity: { unit: string; binMs: number; from: string; values: number[]; covered: boolean[] };
  }[];
}

async function writes(prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await client.call('SET', `${prefix}:${i}`, String(i));
}

beforeAll(async () => {
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  client = await master.client();
  work = await makeTempDir('rf-info-');
  store = path.join(work, 'store');
  daemon = RfDaemon.start(['--source', master.url, '--store', store, '--flush-interval', '20']);
  await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');
  await writes('first', 200);
  await caughtUp(master);
  const before = daemon.lines.length;
  await master.restart();
  await daemon.waitForLog((l) => l.msg === 'new timeline after a gap', 30_000, before);
  client = await master.client();
  await writes('second', 300);
  await caughtUp(master);
  running = await info();
  expect((await daemon.stop()).code).toBe(0);
  stopped = await info();
}, 90_000);

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  await master?.stop();
  if (work) await removeTempDir(work);
});

describe('rf info, text', () => {
  it('fits an 80-column terminal', () => {
    for (const view of [running, stopped]) {
      for (const line of view.stdout.split('\n')) expect([...line].length).toBeLessThanOrEqual(80);
    }
  });

  it('shows both timelines, the gap with its reason, and both restorable ranges in UTC and --tz', () => {
    const src = stopped.json.sources[0]!;
    const out = stopped.stdout;
    expect(out).toContain(`source default  ${master.url}`);
    expect(out).toMatch(/^ {4}#1 {2}\S+Z \.\. \S+Z {2}initial$/m);
    expect(out).toMatch(/^ {4}#2 {2}\S+Z \.\. \S+Z {2}replid-changed$/m);
    const gap = src.gaps[0]!;
    expect(out).toContain(`    ${gap.from} .. ${gap.until}`);
    expect(out).toContain('        replid-changed, between timelines 1 and 2');
    for (const r of src.restorable) expect(out).toContain(`  ${r.from} .. ${r.until}`);
    // The same instants in the zone asked for, with the offset in force there (CET or CEST).
    const local = formatInZone(Date.parse(src.restorable[0]!.from), 'Europe/Paris');
    expect(local).toMatch(/\+0[12]:00$/);
    expect(out).toContain(`              ${local} .. `);
    expect(out).toContain('(the same in Europe/Paris)');
  });

  it('says rf listen runs, and how far behind the master the capture is', () => {
    expect(running.stdout).toContain(
      `rf listen   running, pid ${daemon.child.pid}, source default`,
    );
    expect(running.stdout).toMatch(
      /^ {2}capture {5}streaming, \d+(\.\d)? (B|KiB) behind the master$/m,
    );
    expect(running.stdout).toMatch(/^ {14}last byte received \d+\.\d s ago$/m);
  });

  it('draws the activity across the restorable range, blank over the gap', () => {
    const a = stopped.json.sources[0]!.activity;
    const lines = stopped.stdout.split('\n');
    const header = lines.findIndex((l) => l.startsWith('  activity    writes per '));
    expect(header).toBeGreaterThan(0);
    const spark = lines[header + 1]!.slice(14);
    expect([...spark]).toHaveLength(a.values.length);
    expect(spark).toMatch(/^[ ·▁▂▃▄▅▆▇█]+$/);
    // The peak is drawn full height; every write is counted in some bin.
    expect(spark).toContain('█');
    expect(a.values.reduce((n, v) => n + v, 0)).toBeGreaterThanOrEqual(500);
    expect(lines[header]).toContain(`peak ${Math.max(...a.values)}`);
  });

  it('shows the last write, the bases, the sizes and that there is no AOF capture', () => {
    const src = stopped.json.sources[0]!;
    expect(stopped.stdout).toContain(`  last write  ${src.lastWrite} (`);
    expect(stopped.stdout).toMatch(/^ {2}bases {7}2 \(\d+(\.\d)? (B|KiB)\), latest \S+Z$/m);
    expect(stopped.stdout).toMatch(/^ {2}on disk {5}\d+(\.\d)? (KiB|MiB)$/m);
    expect(stopped.stdout).toContain('  aof         no AOF capture');
  });
});

describe('rf info --json', () => {
  it('holds the fields DESIGN.md lists', () => {
    const src = stopped.json.sources[0]!;
    expect(src.name).toBe('default');
    expect(src.timelines).toHaveLength(2);
    for (const t of src.timelines) {
      expect(t.replid).toMatch(/^[0-9a-f]{40}$/);
      expect(Date.parse(t.from)).toBeLessThanOrEqual(Date.parse(t.until));
      expect(t.durableOffset).toBeGreaterThan(0);
    }
    expect(src.gaps).toEqual([
      {
        from: src.restorable[0]!.until,
        until: src.timelines[1]!.from,
        reason: 'replid-changed',
        before: 1,
        after: 2,
        // No AOF record here to restore the gap from.
        aof: false,
      },
    ]);
    // Every write was received live: nothing is imprecise.
    expect(src.imprecise).toEqual([]);
    expect(src.restorable).toHaveLength(2);
    expect(src.aof).toMatchObject({ chunks: 0, bytes: 0, lastChunkAt: null });
  });

  it('adds lag, sizes, the last write and the activity', () => {
    const src = running.json.sources[0]!;
    const still = stopped.json.sources[0]!;
    expect(src.lag).toMatchObject({ phase: 'streaming' });
    // The master's offset is sampled once a second; a PING may have moved it since.
    expect(src.lag!.behindBytes).toBeLessThan(100);
    expect(src.lag!.durableOffset).toBe(src.timelines[1]!.durableOffset);
    expect(src.sizes.stream).toBeGreaterThan(500 * 20);
    expect(src.sizes.total).toBeGreaterThanOrEqual(src.sizes.stream + src.sizes.bases);
    expect(Date.parse(src.lastWrite!)).toBeLessThanOrEqual(Date.parse(src.lastCapture!));
    expect(still.lag).toBeNull();
    expect(still.activity.unit).toBe('writes');
    // A bin is drawn when it overlaps a restorable range; bins wholly inside the gap are blank.
    const from = Date.parse(still.activity.from);
    const expected = still.activity.values.map((_, i) => {
      const lo = from + i * still.activity.binMs;
      const hi = lo + still.activity.binMs - 1;
      return still.restorable.some((r) => Date.parse(r.from) <= hi && Date.parse(r.until) >= lo);
    });
    expect(still.activity.covered).toEqual(expected);
    expect(stopped.json.onDisk).toBeGreaterThan(0);
  });
});

describe('rf info once rf listen has stopped', () => {
  it('reads the store directly and says nothing captures the source', () => {
    expect(stopped.stdout).toContain('  rf listen   not running');
    expect(stopped.stdout).toContain('  capture     rf listen is not capturing this source');
  });
});

describe('rf info with a bad --tz', () => {
  it('refuses it with RF_BAD_TIME, exit 2, before printing anything', async () => {
    const res = await rf(['info', '--store', store, '--tz', 'Mars/Olympus']);
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain('RF_BAD_TIME');
    expect(res.stderr).toContain('Mars/Olympus');
  });
});
