/**
 * Rows 10 and 11: "who changed user:42" over a large archive with no time window, and what the
 * key index that answers it costs on disk.
 *
 * The archive is built with rf's own StreamWriter through the capture path's scanner (the
 * frames a master propagates for redis-benchmark's write tests, random keys, 10 writes per ms),
 * with `SET user:42 …` once every million writes. `rf log --key user:42` runs end to end beside
 * `rf info` on the same store (mostly Node start-up), then again with the key index removed:
 * the reading of every segment rf did before it kept one.
 */
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FrameScanner } from '../../dist/resp/frames.js';
import { kindAt } from '../../dist/store/commands.js';
import { prefixEnd } from '../../dist/store/keys.js';
import { Store } from '../../dist/store/store.js';
import { removeDir, run, tempDir } from './env.mjs';
import { fmtBytes, fmtCount, fmtRatio, fmtSeconds, row } from './format.mjs';
import { rf } from './rf.mjs';
import { newArchive, SOURCE } from './store.mjs';
import { benchFrame, randomInts } from './workloads.mjs';

const WRITES_PER_MS = 10;
const PROBE_EVERY = 1_000_000;
const PROBE = 'user:42';
const KIX = `s/${SOURCE}/kix/`;

/** Writes `writes` frames into a new archive; returns the stream's size. */
export async function build(dir, writes) {
  const t0 = Date.now() - Math.ceil(writes / WRITES_PER_MS) - 60_000;
  const { store, writer } = await newArchive(dir, t0);
  const rand = randomInts(17);
  const scanner = new FrameScanner({ startAt: 1 });
  let i = 0;
  let probes = 0;
  const time = () => t0 + Math.floor(i / WRITES_PER_MS);
  const feed = (text) => {
    scanner.scan(Buffer.from(text, 'latin1'), (f) =>
      writer.appendFrame(f, time(), kindAt(f.buf, f.nameStart, f.nameLength)),
    );
    writer.settle();
  };
  try {
    feed('*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n');
    const perBatch = 2048;
    while (i < writes) {
      const parts = [];
      for (let j = 0; j < perBatch && i < writes; j++, i++) {
        if (i % PROBE_EVERY === PROBE_EVERY / 2) {
          parts.push(`*3\r\n$3\r\nSET\r\n$7\r\n${PROBE}\r\n$${String(i).length}\r\n${i}\r\n`);
          probes++;
        } else {
          parts.push(benchFrame(i, rand));
        }
      }
      feed(parts.join(''));
      if (writer.full) await writer.flush();
    }
    await writer.flush();
  } finally {
    await store.close();
  }
  return { streamBytes: scanner.position - 1, probes };
}

/** The key index's entries and bytes; with `drop`, deletes them (a store before the index). */
async function keyIndex(dir, drop) {
  const store = await Store.open(dir, { create: false });
  try {
    let bytes = 0;
    let ops = [];
    let entries = 0;
    for await (const [key, value] of store.entries({ gte: KIX, lt: prefixEnd(KIX) })) {
      bytes += value.length;
      entries++;
      if (drop) ops.push({ type: 'del', key });
      if (ops.length >= 1000) {
        await store.batch(ops);
        ops = [];
      }
    }
    if (ops.length > 0) await store.batch(ops);
    return { bytes, entries };
  } finally {
    await store.close();
  }
}

/** Best of `reps` wall-clock runs of an rf command that must succeed. */
function best(args, reps) {
  return bestOf(() => rf(args), reps, `rf ${args.join(' ')}`);
}

/** Best of `reps` wall-clock runs of a command that must succeed. */
async function bestOf(start, reps, what = 'node -e 0') {
  let fastest = null;
  for (let r = 0; r < reps; r++) {
    const res = await start();
    if (res.code !== 0) throw new Error(`${what} exited ${res.code}: ${res.stderr.slice(-400)}`);
    if (fastest === null || res.ms < fastest.ms) fastest = res;
  }
  return fastest;
}

/** "(N segments read, M passed over by the key index in …)" from rf log's summary line. */
function segmentsOf(stderr) {
  const m = /\((\d+) segments read(?:, (\d+) passed over by the key index)? in/.exec(stderr);
  if (m === null) throw new Error(`rf log printed no summary: ${stderr.slice(-300)}`);
  return { read: Number(m[1]), skipped: Number(m[2] ?? 0) };
}

export async function indexRows(cfg, want, progress) {
  const { writes, reps } = cfg.index;
  const dir = await tempDir('index');
  try {
    const store = path.join(dir, 'store');
    const b0 = performance.now();
    const built = await build(store, writes);
    const buildSeconds = (performance.now() - b0) / 1000;
    const ix = await keyIndex(store, false);
    progress(
      `index: built ${fmtCount(writes)} writes (${fmtBytes(built.streamBytes)} of stream, ${fmtBytes(ix.bytes)} of key index) in ${buildSeconds.toFixed(1)} s`,
    );
    const rows = [];
    if (want.has(10)) {
      const load = os.loadavg()[0];
      const bare = await bestOf(() => run(process.execPath, ['-e', '0']), reps);
      const info = await best(['info', '--store', store], reps);
      const log = await best(['log', '--store', store, '--key', PROBE], reps);
      const found = log.stdout.split('\n').filter(Boolean).length;
      if (found !== built.probes)
        throw new Error(`rf log found ${found} writes to ${PROBE}, not ${built.probes}`);
      const segs = segmentsOf(log.stderr);
      const prefix = await best(['log', '--store', store, '--key', 'user:4*'], 1);
      const prefixSegs = segmentsOf(prefix.stderr);
      await keyIndex(store, true);
      const before = await best(['log', '--store', store, '--key', PROBE], 1);
      const total = segs.read + segs.skipped;
      rows.push(
        row({
          id: '10',
          name: 'rf log --key: who changed K',
          workload: `rf log --key ${PROBE}, no time window, over ${fmtCount(writes)} redis-benchmark-like writes (${fmtBytes(built.streamBytes)} of stream, ${total} segments), ${built.probes} of them to ${PROBE}; best of ${reps}`,
          rf: `${fmtSeconds(log.ms / 1000)} end to end, reading ${segs.read} of ${total} segments (${((100 * segs.read) / total).toFixed(1)}%)`,
          reference: `${fmtSeconds(info.ms / 1000)}: rf info on the same store (mostly Node start-up); ${fmtSeconds(bare.ms / 1000)}: node -e 0; ${fmtSeconds(before.ms / 1000)} reading every segment (the key index removed)`,
          ratio: log.ms / before.ms,
          ratioText: `${fmtRatio(log.ms / before.ms)} the full read`,
          target: '≤ 0.5 s end to end',
          met: log.ms <= 500,
          notes: [
            `rf log --key 'user:4*' (a prefix): ${fmtSeconds(prefix.ms / 1000)}, reading ${prefixSegs.read} of ${total} segments`,
            `archive built with StreamWriter in ${buildSeconds.toFixed(1)} s`,
            `load average ${load.toFixed(1)} when the timings began`,
          ],
          data: {
            writes,
            info: info.ms,
            node: bare.ms,
            load,
            log: log.ms,
            before: before.ms,
            segs,
            prefixSegs,
            buildSeconds,
          },
        }),
      );
    }
    if (want.has(11)) {
      rows.push(
        row({
          id: '11',
          name: 'key index size',
          workload: `the key index of the row-10 archive: a Bloom filter per segment (10 bits a key and a prefix, 5 probes)`,
          rf: `${(ix.bytes / built.streamBytes).toFixed(3)} B per stream byte (${fmtBytes(ix.bytes)} for ${fmtBytes(built.streamBytes)}, ${ix.entries} segments)`,
          reference: 'none',
          target: 'none (reported)',
          data: { indexBytes: ix.bytes, streamBytes: built.streamBytes, segments: ix.entries },
        }),
      );
    }
    return rows;
  } finally {
    await removeDir(dir);
  }
}
