import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { emptyLogStats, type LogFilter, queryLog } from '../../src/log/query.js';
import type { RedisClient } from '../../src/resp/client.js';
import { Archive } from '../../src/store/archive.js';
import { KeyIndex } from '../../src/store/key-index.js';
import { prefixEnd } from '../../src/store/keys.js';
import { Store } from '../../src/store/store.js';
import { rf } from '../helpers/rf.js';
import { caughtUp, testScope } from '../helpers/scope.js';
import { workloadPhase } from '../helpers/workload.js';

/**
 * `rf log --key` reads only the segments the key index lets through, and answers exactly what
 * it answers reading every segment: over what rf listen captured from a real redis-server
 * (MULTI/EXEC, scripts and functions, renames, multi-key commands, several dbs), with the index,
 * without it (a store written before rf kept one), and once `rf verify` has added it back.
 */

const scope = testScope();
const SRC = 'default';
const KIX = `s/${SRC}/kix/`;

const QUERIES: LogFilter[] = [
  'user:42',
  'user:42:*',
  'user:4*',
  'user:*',
  'str:1',
  'lua:*',
  'renamed:2',
  'copied:*',
  'tx-db1:3',
  'counter',
  'hash',
  'stream',
  'geo-near',
  'bits2',
  'after-flush:*',
  'nosuch:key',
  '*:42',
].map((k) => ({ key: Buffer.from(k) }));
QUERIES.push(
  { key: Buffer.from('tx-db1:*'), db: 1 },
  { key: Buffer.from('user:42'), db: 2 },
  { key: Buffer.from('copied:1'), db: 2 },
  { key: Buffer.from('user:4*'), command: 'hset' },
);

async function writeWorkload(c: RedisClient): Promise<void> {
  for (let phase = 0; phase < 4; phase++) {
    for (let i = 0; i < 300; i++) await c.call('SET', `user:${i}`, `v${phase}`);
    await workloadPhase(c, phase);
    await c.call('HSET', 'user:42:profile', 'phase', String(phase));
    await c.call('MSET', 'user:42', `m${phase}`, `user:43`, 'x');
    await c.call('SELECT', '2');
    await c.call('SET', 'user:42', `db2-${phase}`);
    await c.call('SELECT', '0');
    await c.call('RENAME', 'user:42', 'user:42:old');
    await c.call('EVAL', "return redis.call('DEL', KEYS[1])", '1', 'user:42:old');
  }
}

/** Every answer, as text, and how many segments were read and passed over. */
async function answers(store: string) {
  const kv = await Store.open(store, { create: false });
  try {
    const archive = new Archive(kv);
    const starts: number[] = [];
    for await (const m of archive.segments(SRC, 1)) starts.push(m.start);
    /** The segments that hold these offsets. */
    const holding = (offsets: number[]) =>
      new Set(offsets.map((o) => starts.filter((s) => s <= o).at(-1)!));
    const out: {
      writes: string[];
      counted: number;
      segments: number;
      skipped: number;
      holding: Set<number>;
    }[] = [];
    for (const filter of QUERIES) {
      const stats = emptyLogStats();
      const writes: string[] = [];
      const offsets: number[] = [];
      for await (const w of queryLog(archive, SRC, { since: null, until: null }, filter, stats)) {
        writes.push(
          `${w.timeline} ${w.offset} ${w.time} db${w.db} tx${w.multiAt} ${w.args.join(' ')}`,
        );
        offsets.push(w.offset);
      }
      expect(stats.damaged).toEqual([]);
      out.push({
        writes,
        counted: stats.writes,
        segments: stats.segments,
        skipped: stats.skipped,
        holding: holding(offsets),
      });
    }
    return out;
  } finally {
    await kv.close();
  }
}

async function dropIndex(store: string): Promise<number> {
  const kv = await Store.open(store, { create: false });
  try {
    const ops = [];
    for await (const [key] of kv.entries({ gte: KIX, lt: prefixEnd(KIX) })) {
      ops.push({ type: 'del' as const, key });
    }
    await kv.batch(ops);
    return ops.length;
  } finally {
    await kv.close();
  }
}

describe('rf log --key and the key index', () => {
  it('gives the same answers with the index, without it, and once rf verify adds it', async () => {
    const master = await scope.master();
    const c = await master.client();
    const store = await scope.storeDir();
    const args = ['--source', master.url, '--store', store, '--segment-size', '1k'];
    let daemon = scope.daemon(args);
    await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');
    await writeWorkload(c);
    await caughtUp(master);
    await daemon.stop();

    const indexed = await answers(store);
    const byPattern = (i: number) => indexed[i]!;
    // The queries find what the workload wrote, and the index spares most segments the reading.
    expect(byPattern(0).writes.length).toBeGreaterThanOrEqual(12);
    // Any pattern matches the writes that change every key of a db (FLUSHDB, SWAPDB).
    expect(byPattern(15).writes.length).toBeGreaterThan(0);
    expect(byPattern(15).writes.every((w) => /\b(FLUSHDB|SWAPDB)\b/i.test(w))).toBe(true);
    const segments = indexed[0]!.segments + indexed[0]!.skipped;
    expect(segments).toBeGreaterThan(10);
    // A key, or a pattern that is a prefix up to a separator and `*`, reads the segments that
    // hold its answers and those with a FLUSHDB or SWAPDB (the answers of `nosuch:key`: they
    // change every key, in any db the index can tell), and about one in a hundred more that
    // the Bloom filter lets through. (`user:4*` is looked up as `user:`, `*:42` not at all.)
    // Which segments a filter lets through depends on where the segments were cut, so the
    // false positives are bounded over all queries together: 10 bits a key and 5 probes give
    // about 0.9% a probe, and 3% is many standard deviations above that, while an index that
    // lets most segments through is far beyond it.
    const everyKey = byPattern(15).holding;
    let extra = 0;
    let probed = 0;
    for (const [i, a] of indexed.entries()) {
      const needed = new Set([...a.holding, ...everyKey]).size;
      expect(a.segments).toBeGreaterThanOrEqual(a.holding.size);
      if ([2, 16, 20].includes(i)) continue;
      extra += Math.max(0, a.segments - needed);
      probed += segments - needed;
    }
    expect(extra).toBeLessThanOrEqual(Math.ceil(0.03 * probed));
    expect(byPattern(0).skipped).toBeGreaterThan(0);
    // A pattern with no literal prefix cannot use it: every segment is read.
    expect(byPattern(16).skipped).toBe(0);

    // A store written before rf kept the index: the same answers, every segment read.
    expect(await dropIndex(store)).toBe(segments);
    const unindexed = await answers(store);
    expect(unindexed.map((a) => a.writes)).toEqual(indexed.map((a) => a.writes));
    // Every write is counted either way, whether its segment was read whole, in part or not at all.
    expect(unindexed.map((a) => a.counted)).toEqual(indexed.map((a) => a.counted));
    expect(indexed.every((a) => a.counted === indexed[0]!.counted)).toBe(true);
    expect(unindexed.every((a) => a.skipped === 0)).toBe(true);

    // rf verify, through the running rf listen, adds the index back: the store is clean.
    daemon = scope.daemon(args);
    await daemon.waitForLog((l) => l.msg === 'control socket listening');
    const verified = await rf(['verify', '--store', store, '--json']);
    expect(verified.code, verified.stderr).toBe(0);
    const report = JSON.parse(verified.stdout);
    expect(report.sources[0].keyIndex).toEqual({ added: segments, rebuilt: 0, removed: 0 });
    // The CLI reads through the daemon too, and passes over segments again.
    const cli = await rf(['log', '--store', store, '--key', 'user:42']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr).toMatch(/passed over by the key index/);
    await daemon.stop();

    const rebuilt = await answers(store);
    expect(rebuilt.map((a) => a.writes)).toEqual(indexed.map((a) => a.writes));
    // The same segments read as with the index rf listen wrote (a segment of PINGs committed
    // since holds no key, and is passed over by every query that has a key to look up).
    const read = (a: { segments: number }[]) => a.slice(0, 16).map((x) => x.segments);
    expect(read(rebuilt)).toEqual(read(indexed));
  }, 120_000);

  it('rf verify finds an index that lies about its segment, and rebuilds it', async () => {
    const master = await scope.master();
    const c = await master.client();
    const store = await scope.storeDir();
    const daemon = scope.daemon(['--source', master.url, '--store', store, '--segment-size', '1k']);
    await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');
    await writeWorkload(c);
    await caughtUp(master);
    await daemon.stop();
    const before = await answers(store);

    // An index that passes its checksum but says no to every key: `rf log --key` would pass
    // over its segment's writes until verify rebuilds it.
    const kv = await Store.open(store, { create: false });
    let lied: string | undefined;
    try {
      for await (const [key, value] of kv.entries({ gte: KIX, lt: prefixEnd(KIX) })) {
        const ix = KeyIndex.decode(value)!;
        if (ix.everyKey || ix.dbs.length === 0 || lied !== undefined) continue;
        lied = key;
        const empty = Buffer.from(value);
        empty.fill(0, 16 + 4 * ix.dbs.length);
        empty.writeUInt32LE(crc32(empty.subarray(8)), 4);
        await kv.batch([{ type: 'put', key, value: empty }]);
      }
    } finally {
      await kv.close();
    }
    expect(lied).toBeDefined();

    const found = await rf(['verify', '--store', store, '--json']);
    expect(found.code, found.stderr).toBe(1);
    const report = JSON.parse(found.stdout);
    expect(report.sources[0].problems.map((p: { code: string }) => p.code)).toEqual(['key-index']);
    expect(report.sources[0].keyIndex).toEqual({ added: 0, rebuilt: 1, removed: 0 });
    const again = await rf(['verify', '--store', store]);
    expect(again.code, again.stdout).toBe(0);
    expect((await answers(store)).map((a) => a.writes)).toEqual(before.map((a) => a.writes));
  }, 120_000);
});
