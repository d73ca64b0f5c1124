/**
 * Row 15: does the upload keep up? The real `rf listen --repo` archives a master under the row-1
 * write load (redis-benchmark, the same tests and sizes) into s3rver, its own process on this
 * host. When the load ends, rf's durable offset is read; the row is how long the bucket then
 * takes to name it in a manifest (its lag behind the durable offset), and the bytes the bucket
 * stores per stream byte.
 *
 * Every wait has a deadline and everything started is stopped in `finally` (SIGTERM, then
 * SIGKILL): a bucket that falls behind for good is a row that says so, never a bench that hangs.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { RepoClient } from '../../dist/repo/client.js';
import { latestManifest } from '../../dist/repo/manifests.js';
import { parseRepoUrl } from '../../dist/repo/url.js';
import {
  removeDir,
  sleep,
  startRedis,
  stopProcess,
  tempDir,
  waitFor,
  waitReplicaOnline,
} from './env.mjs';
import { fmtBytes, fmtCount, fmtRate, fmtSeconds, row } from './format.mjs';
import { BUCKET, S3_ENV, startS3 } from './repo.mjs';
import { startListen } from './rf.mjs';
import { BENCH_TESTS, KEYSPACE, redisBenchmark } from './workloads.mjs';

const SOURCE = 'default';
/** How long the bucket may take to name the durable offset before the row says it fell behind. */
const CATCH_UP_MS = 180_000;

/** Where the bucket's newest manifest has the stream of `timeline` up to, and what it stores. */
async function bucketState(client, timeline) {
  const m = await latestManifest(client, SOURCE);
  if (m === undefined) return { end: 0, stored: 0, bytes: 0, seq: 0 };
  let end = 0;
  let stored = 0;
  let bytes = 0;
  for (const p of m.packs) {
    if (p.kind !== 'seg' || p.group !== timeline) continue;
    end = Math.max(end, p.end);
    stored += p.stored;
    bytes += p.bytes;
  }
  return { end, stored, bytes, seq: m.seq };
}

export async function uploadRows(cfg, _want, progress) {
  const n = cfg.capture.requestsPerTest;
  const dir = await tempDir('upload');
  Object.assign(process.env, S3_ENV);
  let s3 = null;
  let master = null;
  let listen = null;
  let client = null;
  try {
    s3 = await startS3(path.join(dir, 's3'));
    master = await startRedis({
      label: 'upload-master',
      args: ['--repl-diskless-sync-delay', '0'],
    });
    const url = `s3://${BUCKET}/upload`;
    listen = await startListen(master.url, path.join(dir, 'store'), path.join(dir, 'listen.log'), [
      '--repo',
      url,
      '--s3-endpoint',
      s3.endpoint,
      '--s3-path-style',
    ]);
    await waitReplicaOnline(master.client);
    client = new RepoClient({
      location: parseRepoUrl(url),
      endpoint: s3.endpoint,
      pathStyle: true,
    });
    const started = await waitFor(
      'rf listen to start its first timeline',
      async () => {
        const s = await listen.status();
        return s?.timeline != null && s.durableOffset != null ? s : null;
      },
      120_000,
      50,
    );
    const timeline = started.timeline;
    const offset0 = started.durableOffset;
    const bench = await redisBenchmark(master.port, n);
    const loadEnded = performance.now();
    const atEnd = await listen.status();
    const durable = atEnd?.durableOffset ?? Number.NaN;
    const masterOffset = Number((await master.info('replication')).master_repl_offset);
    const startBehind = durable - (await bucketState(client, timeline)).end;
    progress(
      `upload: load done (${fmtRate(bench.rps)}); durable ${fmtBytes(masterOffset - durable)} behind the master, the bucket ${fmtBytes(startBehind)} behind that`,
    );
    // First until the bucket names the durable offset read at the end of the load, then the
    // master's offset of that moment (what rf itself had yet to make durable, uploaded too).
    let caught = null;
    let caughtMaster = null;
    let last = { end: 0, stored: 0, bytes: 0, seq: 0 };
    const deadline = loadEnded + CATCH_UP_MS;
    while (performance.now() < deadline) {
      last = await bucketState(client, timeline);
      const at = (performance.now() - loadEnded) / 1000;
      if (caught === null && last.end >= durable) caught = at;
      if (last.end >= masterOffset) {
        caughtMaster = at;
        break;
      }
      await sleep(100);
    }
    const behind = Math.max(0, durable - last.end);
    const perStreamByte = last.bytes > 0 ? last.stored / last.bytes : Number.NaN;
    progress(
      caught === null
        ? `upload: the bucket was still ${fmtBytes(behind)} behind after ${CATCH_UP_MS / 1000} s`
        : `upload: the bucket named the durable offset ${fmtSeconds(caught)} after the load`,
    );
    return [
      row({
        id: '15',
        name: 'upload keeps up: bucket lag behind the durable offset',
        workload: `the row-1 load once: redis-benchmark -P 16 -t ${BENCH_TESTS.join(',')} -r ${fmtCount(KEYSPACE)} -n ${fmtCount(n)} (per test) against a master archived by rf listen --repo into s3rver on this host (no key file)`,
        rf:
          caught === null
            ? `not caught up after ${CATCH_UP_MS / 1000} s: ${fmtBytes(behind)} behind`
            : `${fmtSeconds(caught)} after the load ends; ${perStreamByte.toFixed(2)} bucket bytes per stream byte`,
        reference: `${fmtBytes(durable - offset0)} of stream made durable by rf during the load (${fmtBytes(masterOffset - durable)} behind the master at its end)`,
        ratio: null,
        ratioText: 'n/a',
        target: 'keeps up (reported)',
        met: caught !== null,
        notes: [
          `at the end of the load the bucket was ${fmtBytes(startBehind)} behind the durable offset; it named the master's offset of that moment ${caughtMaster === null ? `not within ${CATCH_UP_MS / 1000} s` : `${fmtSeconds(caughtMaster)} after the load`}`,
          `the lag is from the end of redis-benchmark until the bucket's newest manifest names rf's durable offset as read at that moment, polled every 100 ms; the bytes per stream byte are the stream packs' stored bytes over the stream they hold (${fmtBytes(last.stored)} for ${fmtBytes(last.bytes)}), manifest seq ${last.seq}`,
        ],
        data: {
          requestsPerTest: n,
          rps: bench.rps,
          streamBytes: durable - offset0,
          durableBehindMaster: masterOffset - durable,
          lagSeconds: caught,
          masterLagSeconds: caughtMaster,
          bucketBehindAtEnd: startBehind,
          bucketBehind: behind,
          stored: last.stored,
          streamInPacks: last.bytes,
          perStreamByte,
        },
      }),
    ];
  } finally {
    client?.close();
    if (listen !== null) await listen.stop().catch(() => undefined);
    if (master !== null) await master.stop().catch(() => undefined);
    if (s3 !== null) await stopProcess(s3.child);
    await removeDir(dir);
  }
}
