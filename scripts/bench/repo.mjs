/**
 * Row 12: a restore from the bucket alone against the same restore from the local store. The
 * archive is built with StreamWriter (row 10's redis-benchmark-like writes), uploaded to a real
 * S3-compatible server (s3rver, its own process) by rf's own uploader, then `rf restore --until
 * latest --out` runs from `--store` and from `--repo` (which fetches the base and packs first).
 */
import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { silentLogger } from '../../dist/logger.js';
import { RepoClient } from '../../dist/repo/client.js';
import { RepoUploader } from '../../dist/repo/uploader.js';
import { parseRepoUrl } from '../../dist/repo/url.js';
import { Archive } from '../../dist/store/archive.js';
import { keys } from '../../dist/store/keys.js';
import { json, Store } from '../../dist/store/store.js';
import { freePort, removeDir, spawnTracked, stopProcess, tempDir, waitFor } from './env.mjs';
import { fmtBytes, fmtCount, fmtRatio, fmtSeconds, row } from './format.mjs';
import { build } from './index.mjs';
import { rf } from './rf.mjs';
import { newArchive, SOURCE } from './store.mjs';

export const S3_ENV = {
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_REGION: 'us-east-1',
};
export const BUCKET = 'rf-bench';

export async function startS3(dir) {
  const require = createRequire(import.meta.url);
  const bin = path.join(path.dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');
  const port = await freePort();
  const child = spawnTracked(process.execPath, [
    bin,
    '-d',
    dir,
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '--silent',
    '--no-vhost-buckets',
    '--configure-bucket',
    BUCKET,
  ]);
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor(
    's3rver to answer',
    async () => {
      try {
        return (await fetch(`${endpoint}/${BUCKET}`)).status < 500;
      } catch {
        return false;
      }
    },
    30_000,
    100,
  );
  return { child, endpoint };
}

/**
 * Best of `reps` runs of each command, taken in turn (a, b, a, b, …) so that a change in the
 * machine's load falls on both alike; each call of an `argsFor` gives its own --out directory.
 */
async function bestOfEach(argsFors, reps) {
  const fastest = argsFors.map(() => null);
  for (let r = 0; r < reps; r++) {
    for (const [i, argsFor] of argsFors.entries()) {
      const args = argsFor();
      const res = await rf(args, { env: { ...process.env, ...S3_ENV } });
      if (res.code !== 0)
        throw new Error(`rf ${args.join(' ')} exited ${res.code}: ${res.stderr.slice(-400)}`);
      if (fastest[i] === null || res.ms < fastest[i].ms) fastest[i] = res;
    }
  }
  return fastest;
}

/**
 * Row 13: the uploader's RSS while it uploads one large base (random bytes, which no stage can
 * shrink), sampled in this process, which holds nothing else of size. The base record is
 * rewritten to the big file's size and sha256: the uploader reads only those and the file.
 */
async function bigBaseRss(dir, s3, bytes) {
  const store = path.join(dir, 'big');
  const { store: kv } = await newArchive(store, Date.now() - 60_000);
  try {
    const [base] = await new Archive(kv).bases(SOURCE);
    const fh = await open(path.join(kv.dir, base.file), 'w');
    const hash = createHash('sha256');
    try {
      const chunk = randomBytes(1 << 20);
      for (let done = 0; done < bytes; done += chunk.length) {
        // A different chunk each time, cheaply: compression finds no repeats.
        chunk.writeUInt32LE(done, 0);
        for (let i = 4; i < chunk.length; i += 4096) chunk.writeUInt32LE((done + i) >>> 0, i);
        hash.update(chunk);
        await fh.write(chunk);
      }
    } finally {
      await fh.close();
    }
    const meta = { ...base, bytes, sha256: hash.digest('hex') };
    await kv.batch([
      { type: 'put', key: keys.base(SOURCE, base.timeline, base.offset), value: json.encode(meta) },
    ]);
    const client = new RepoClient({
      location: parseRepoUrl(`s3://${BUCKET}/big`),
      endpoint: s3.endpoint,
      pathStyle: true,
    });
    const before = process.memoryUsage().rss;
    let peak = before;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    const t0 = performance.now();
    try {
      const uploader = new RepoUploader({ store: kv, source: SOURCE, client, log: silentLogger() });
      uploader.start();
      const done = await uploader.finish(1_200_000);
      if (!done.complete)
        throw new Error(`the upload did not finish: ${done.backlogBytes} bytes left`);
    } finally {
      clearInterval(timer);
    }
    return { before, peak, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await kv.close();
    await removeDir(store);
  }
}

export async function repoRows(cfg, want, progress) {
  const { writes, reps } = cfg.repo;
  const dir = await tempDir('repo');
  let s3 = null;
  try {
    Object.assign(process.env, S3_ENV);
    s3 = await startS3(path.join(dir, 's3'));
    // First, while this process holds nothing else of size: its RSS is then the uploader's.
    const big = want.has(13) ? await bigBaseRss(dir, s3, cfg.repo.baseBytes) : null;
    if (big !== null)
      progress(
        `repo: a ${fmtBytes(cfg.repo.baseBytes)} base uploaded in ${big.seconds.toFixed(1)} s`,
      );
    const store = path.join(dir, 'store');
    const built = await build(store, writes);
    const url = `s3://${BUCKET}/bench`;
    const client = new RepoClient({
      location: parseRepoUrl(url),
      endpoint: s3.endpoint,
      pathStyle: true,
    });
    const kv = await Store.open(store, { create: false });
    let uploaded;
    try {
      const uploader = new RepoUploader({ store: kv, source: SOURCE, client, log: silentLogger() });
      uploader.start();
      const done = await uploader.finish(600_000);
      if (!done.complete)
        throw new Error(`the upload did not finish: ${done.backlogBytes} bytes left`);
      uploaded = uploader.snapshot().uploadedBytes;
    } finally {
      await kv.close();
    }
    progress(
      `repo: ${fmtCount(writes)} writes (${fmtBytes(built.streamBytes)}) uploaded as ${fmtBytes(uploaded)}`,
    );
    let n = 0;
    const out = () => path.join(dir, `out-${n++}`);
    const repoFlags = ['--repo', url, '--s3-endpoint', s3.endpoint, '--s3-path-style'];
    const [local, bucket] = await bestOfEach(
      [
        () => ['restore', '--store', store, '--until', 'latest', '--out', out()],
        () => ['restore', ...repoFlags, '--until', 'latest', '--out', out()],
      ],
      reps,
    );
    const ratio = bucket.ms / local.ms;
    const rows = [];
    if (big !== null)
      rows.push(
        row({
          id: '13',
          name: 'RSS while uploading a large base',
          workload: `one ${fmtBytes(cfg.repo.baseBytes)} base of random bytes, uploaded by rf's uploader to s3rver on this host`,
          rf: `${fmtBytes(big.peak)} peak RSS (${fmtBytes(big.before)} before the upload)`,
          reference: `${big.seconds.toFixed(1)} s to upload`,
          ratio: null,
          ratioText: 'n/a',
          target: '< 200 MB, flat',
          met: big.peak < 200 * 1024 * 1024,
          notes: [
            `sampled every 50 ms in the bench process, which runs this upload before building anything else; growth ${fmtBytes(big.peak - big.before)}`,
          ],
          data: { ...big, baseBytes: cfg.repo.baseBytes },
        }),
      );
    if (!want.has(12)) return rows;
    rows.push(
      row({
        id: '12',
        name: 'restore from the bucket vs the local store',
        workload: `rf restore --until latest --out, ${fmtCount(writes)} redis-benchmark-like writes (${fmtBytes(built.streamBytes)} of stream, ${fmtBytes(uploaded)} in the bucket) over an empty base; s3rver on this host; best of ${reps} each, run in turn`,
        rf: `${fmtSeconds(bucket.ms / 1000)} from --repo (fetch included)`,
        reference: `${fmtSeconds(local.ms / 1000)} from --store`,
        ratio,
        ratioText: `${fmtRatio(ratio)} the local restore`,
        target: '≤ 1.3×',
        met: ratio <= 1.3,
        notes: [`bucket bytes per stream byte: ${(uploaded / built.streamBytes).toFixed(2)}`],
        data: {
          writes,
          streamBytes: built.streamBytes,
          uploaded,
          local: local.ms,
          bucket: bucket.ms,
        },
      }),
    );
    return rows;
  } finally {
    if (s3 !== null) await stopProcess(s3.child);
    await removeDir(dir);
  }
}
