#!/usr/bin/env node
/**
 * Benchmark (not a test): `rf log --key` among 1 M archived writes, and `rf verify`'s and
 * `rf info`'s time over the same archive.
 *
 * The archive is written directly with the store's own StreamWriter (no Redis needed): a base,
 * then 1 M `SET key:<i> value-<i>` at 100 writes a second (about 2.8 hours of capture), a PING
 * every 10 s as a master sends, and every 10 000th write going to `user:42` instead. The figures
 * are wall-clock times of the real CLI, each the best of three runs.
 *
 *   npm run build && node scripts/bench-log.mjs [--writes 1000000] [--keep]
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../dist/logger.js';
import { crc64 } from '../dist/rdb/crc64.js';
import { encodeCommand } from '../dist/resp/encode.js';
import { Store } from '../dist/store/store.js';
import { beginTimeline } from '../dist/store/timelines.js';
import { StreamWriter } from '../dist/store/writer.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RF = path.join(ROOT, 'dist', 'cli', 'main.js');
const argv = process.argv.slice(2);
const WRITES = Number(argv[argv.indexOf('--writes') + 1] || 1_000_000) || 1_000_000;
const KEEP = argv.includes('--keep');
const TARGET_EVERY = 10_000;
const SOURCE = 'default';
const T0 = Date.parse('2026-11-24T12:00:00.000Z');

/** An empty RDB as Redis 7.0 writes it: header, EOF opcode, CRC64 trailer. */
function emptyRdb() {
  const body = Buffer.from('REDIS0010\xff', 'latin1');
  const crc = crc64(0n, body);
  const trailer = Buffer.alloc(8);
  trailer.writeBigUInt64LE(crc);
  return Buffer.concat([body, trailer]);
}

async function build(dir) {
  const store = await Store.open(dir, { create: true });
  try {
    const rdb = emptyRdb();
    const tmpFile = path.join(dir, 'tmp', 'bench-base.rdb');
    await writeFile(tmpFile, rdb);
    const replid = 'b'.repeat(40);
    const { timeline, state } = await beginTimeline(
      store,
      { name: SOURCE, url: 'redis://bench:6379', createdAt: T0 },
      undefined,
      {
        tmpFile,
        replid,
        offset: 0,
        takenAt: T0,
        bytes: rdb.length,
        sha256: createHash('sha256').update(rdb).digest('hex'),
        rdbVersion: 10,
        transfer: 'disk',
      },
    );
    const writer = new StreamWriter(store, SOURCE, timeline, state, {
      maxSegmentBytes: 1024 * 1024,
      log: silentLogger(),
    });
    let offset = 1;
    const append = (args, now) => {
      const bytes = encodeCommand(args);
      writer.append(
        offset,
        bytes,
        args.map((a) => Buffer.from(String(a))),
        now,
      );
      offset += bytes.length;
    };
    append(['SELECT', '0'], T0 + 1);
    let nextPing = T0 + 10_000;
    for (let i = 0; i < WRITES; i++) {
      const now = T0 + 1 + i * 10;
      if (now >= nextPing) {
        append(['ping'], now);
        nextPing += 10_000;
      }
      const key = i % TARGET_EVERY === 0 ? 'user:42' : `key:${i}`;
      append(['SET', key, `value-${i}`], now);
      if (writer.full) await writer.flush();
    }
    await writer.flush();
    return { segments: (await store.get(`s/${SOURCE}/tl/00000001`)).toString() };
  } finally {
    await store.close();
  }
}

function time(label, args, check) {
  let best = Number.POSITIVE_INFINITY;
  let last;
  for (let run = 0; run < 3; run++) {
    const t = performance.now();
    last = spawnSync(process.execPath, [RF, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
    best = Math.min(best, performance.now() - t);
    if (last.status !== check.exit) {
      throw new Error(`${label}: exit ${last.status}\n${last.stderr}`);
    }
  }
  const note = check.describe(last);
  console.log(`${label.padEnd(44)} ${(best / 1000).toFixed(3).padStart(7)} s   ${note}`);
  return best;
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'rf-bench-log-'));
try {
  const store = path.join(dir, 'store');
  const t = performance.now();
  const built = await build(store);
  const tl = JSON.parse(built.segments);
  console.log(
    `archive: ${WRITES} writes, ${tl.segments} segments, ${(tl.bytes / 1024 / 1024).toFixed(1)} MiB of stream, built in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );
  const lines = (r) => r.stdout.split('\n').filter((l) => l !== '').length;
  const expected = Math.ceil(WRITES / TARGET_EVERY);
  time('rf log --key user:42 (whole archive)', ['log', '--store', store, '--key', 'user:42'], {
    exit: 0,
    describe: (r) => {
      if (lines(r) !== expected) throw new Error(`found ${lines(r)} writes, expected ${expected}`);
      return `${lines(r)} writes found`;
    },
  });
  time("rf log --key 'user:4*' (glob)", ['log', '--store', store, '--key', 'user:4*'], {
    exit: 0,
    describe: (r) => `${lines(r)} writes found`,
  });
  const mid = new Date(T0 + WRITES * 5).toISOString();
  const end = new Date(T0 + WRITES * 5 + 60_000).toISOString();
  time(
    'rf log --since mid --until mid+1m (seek)',
    ['log', '--store', store, '--since', mid, '--until', end],
    {
      exit: 0,
      describe: (r) => `${lines(r)} writes printed`,
    },
  );
  const verify = time('rf verify', ['verify', '--store', store], {
    exit: 0,
    describe: () => `${(tl.bytes / 1024 / 1024 / 1).toFixed(1)} MiB checked`,
  });
  console.log(
    `${'verify throughput'.padEnd(44)} ${(tl.bytes / 1024 / 1024 / (verify / 1000)).toFixed(1).padStart(7)} MiB/s, ${(WRITES / (verify / 1000) / 1e6).toFixed(2)} M commands/s`,
  );
  time('rf info (activity from segment metas)', ['info', '--store', store], {
    exit: 0,
    describe: () => '',
  });
  if (KEEP) console.log(`kept ${store}`);
} finally {
  if (!KEEP) await rm(dir, { recursive: true, force: true });
}
