/**
 * Row 7: locating T in a large archive. The archive is built directly with rf's StreamWriter
 * (SET frames, 10 writes per ms); the same writes go to a Redis 7 appendonlydir with #TS
 * annotations, the reference: Redis's own way to find T is redis-check-aof
 * --truncate-to-timestamp, a scan of the AOF.
 */
import { mkdir, open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { planRestore } from '../../dist/restore/locate.js';
import { Archive } from '../../dist/store/archive.js';
import { Store } from '../../dist/store/store.js';
import { diskUsage, median, removeDir, runOk, tempDir } from './env.mjs';
import { fmtBytes, fmtCount, fmtMs, fmtRate, fmtRatio, fmtSeconds, row } from './format.mjs';
import { atMs, hasLogCommand, rf } from './rf.mjs';
import { emptyRdb, newArchive, SOURCE } from './store.mjs';
import { randomInts } from './workloads.mjs';

const WRITES_PER_MS = 10;
const SET = Buffer.from('SET');
/** `SET key:<12 digits> xxx`, 45 bytes; the digits are patched in per frame. */
const TEMPLATE = Buffer.from(
  '*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000000\r\n$3\r\nxxx\r\n',
  'latin1',
);
const DIGITS_AT = TEMPLATE.indexOf('key:') + 4;
const FRAME = TEMPLATE.length;

function patchDigits(buf, at, n) {
  for (let i = 11; i >= 0; i--) {
    buf[at + i] = 48 + (n % 10);
    n = Math.floor(n / 10);
  }
}

/** Writes `writes` SET frames into a new archive and an AOF; returns the time range. */
export async function build(dir, writes) {
  const t0 = Date.now() - Math.ceil(writes / WRITES_PER_MS) - 60_000;
  const { store, writer } = await newArchive(path.join(dir, 'store'), t0);
  const aofDir = path.join(dir, 'aof', 'appendonlydir');
  await mkdir(aofDir, { recursive: true });
  await writeFile(path.join(aofDir, 'appendonly.aof.1.base.rdb'), await emptyRdb());
  await writeFile(
    path.join(aofDir, 'appendonly.aof.manifest'),
    'file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n',
  );
  const aof = await open(path.join(aofDir, 'appendonly.aof.1.incr.aof'), 'w');
  const rand = randomInts(7);
  // Small batches, so a segment is sealed within 92 KB of --segment-size.
  const perBatch = 2048;
  const args = [SET];
  let offset = 1;
  let second = -1;
  let firstTime = null;
  let lastTime = null;
  const probeAt = Math.floor(writes / 2);
  let probeKey = null;
  try {
    // The stream and the AOF both start in db 0, as a master's do.
    const select = Buffer.from('*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n', 'latin1');
    writer.append(offset, select, [Buffer.from('SELECT'), Buffer.from('0')], t0);
    offset += select.length;
    let aofParts = [select];
    for (let i = 0; i < writes; ) {
      const n = Math.min(perBatch, writes - i);
      const buf = Buffer.allocUnsafe(n * FRAME);
      let from = 0;
      for (let j = 0; j < n; j++, i++) {
        const at = j * FRAME;
        TEMPLATE.copy(buf, at);
        const key = rand(1_000_000_000);
        if (i === probeAt) probeKey = `key:${String(key).padStart(12, '0')}`;
        patchDigits(buf, at + DIGITS_AT, key);
        const time = t0 + Math.floor(i / WRITES_PER_MS);
        firstTime ??= time;
        lastTime = time;
        const sec = Math.floor(time / 1000);
        if (sec !== second) {
          // Redis writes #TS:<unix seconds> before the first command of each new second (aof.c).
          if (at > from) aofParts.push(buf.subarray(from, at));
          aofParts.push(Buffer.from(`#TS:${sec}\r\n`, 'latin1'));
          from = at;
          second = sec;
        }
        writer.append(offset, buf.subarray(at, at + FRAME), args, time);
        offset += FRAME;
      }
      aofParts.push(buf.subarray(from));
      await aof.write(Buffer.concat(aofParts));
      aofParts = [];
      // Sealed at --segment-size, as rf listen seals them when it keeps up.
      if (writer.full) await writer.flush();
    }
    await writer.flush();
  } finally {
    await aof.close();
    await store.close();
  }
  return { firstTime, lastTime, streamBytes: offset - 1, aofDir, probeKey };
}

export async function seekRows(cfg, _want, progress) {
  const { writes, lookups } = cfg.seek;
  const dir = await tempDir('seek');
  try {
    const b0 = performance.now();
    const built = await build(dir, writes);
    const buildSeconds = (performance.now() - b0) / 1000;
    const store = path.join(dir, 'store');
    const storeBytes = await diskUsage(store);
    progress(
      `seek: built ${fmtCount(writes)} writes (${fmtBytes(built.streamBytes)} of stream, ${fmtBytes(storeBytes)} on disk) in ${buildSeconds.toFixed(1)} s`,
    );
    const { firstTime, lastTime } = built;
    const rand = randomInts(11);
    const at = (f) => Math.round(firstTime + (lastTime - firstTime) * f);

    // The plan alone, in this process: open the store, then one planRestore per target time.
    const kv = await Store.open(store, { create: false });
    const times = [];
    let plan;
    try {
      const archive = new Archive(kv);
      for (let i = 0; i < lookups; i++) {
        const t = i === 0 ? at(0.9) : at(rand(1_000_000) / 1_000_000);
        const s = performance.now();
        plan = await planRestore(archive, SOURCE, t);
        times.push(performance.now() - s);
      }
    } finally {
      await kv.close();
    }
    if (plan === undefined) throw new Error('no plan');
    const planMedian = median(times);
    const planWorst = Math.max(...times);

    // The CLI end to end; --dry-run also counts every write from the base to T.
    const target = at(0.9);
    const dry = await rf([
      'restore',
      '--store',
      store,
      '--until',
      atMs(target),
      '--dry-run',
      '--json',
    ]);
    if (dry.code !== 0)
      throw new Error(`rf restore --dry-run exited ${dry.code}: ${dry.stderr.slice(-500)}`);

    let logNote;
    if (await hasLogCommand()) {
      // A key written once, halfway through the archive; no time window, so the whole archive.
      const r = await rf(['log', '--store', store, '--key', built.probeKey]);
      logNote = `rf log --key ${built.probeKey} (no time window: the whole archive): ${fmtSeconds(r.ms / 1000)} end to end (exit ${r.code}, ${r.stdout.split('\n').filter(Boolean).length} line(s) out)`;
    } else {
      logNote =
        '`rf log` is not wired in dist/cli/main.js in this build: only the seek is measured';
    }

    // Redis's way: scan the AOF up to the first annotation after T's second, then truncate (on the
    // only copy: the files are discarded afterwards).
    const check = await runOk('redis-check-aof', [
      '--truncate-to-timestamp',
      String(Math.floor(target / 1000)),
      path.join(built.aofDir, 'appendonly.aof.manifest'),
    ]);
    const checkMs = check.ms;
    return [
      row({
        id: '7',
        name: 'seek: locate T',
        workload: `archive of ${fmtCount(writes)} SET writes (${fmtBytes(built.streamBytes)} of stream${writes < 10_000_000 ? '; quick run: fewer than the 10M of the full run' : ''}), ${lookups} target times`,
        rf: `plan (planRestore) median ${fmtMs(planMedian)}, worst ${fmtMs(planWorst)} (first, cold: ${fmtMs(times[0])})`,
        reference: `${fmtSeconds(checkMs / 1000)}: redis-check-aof --truncate-to-timestamp over the same writes as an AOF, T at 90%`,
        ratio: planMedian / checkMs,
        ratioText: fmtRatio(planMedian / checkMs, 4),
        target: 'worst < 50 ms',
        met: planWorst < 50,
        notes: [
          `rf restore --dry-run --until T (90% in), end to end: ${fmtSeconds(dry.ms / 1000)} (node start, open, plan, then it decodes every segment from the base to T to count the writes)`,
          logNote,
          `archive built with StreamWriter in ${buildSeconds.toFixed(1)} s (${fmtRate(writes / buildSeconds, 'writes/s')}); ${fmtBytes(storeBytes)} on disk`,
        ],
        data: { writes, times, dryRunMs: dry.ms, checkMs, buildSeconds, storeBytes },
      }),
    ];
  } finally {
    await removeDir(dir);
  }
}
