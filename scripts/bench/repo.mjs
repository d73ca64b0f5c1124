/**
 * Row 12: a restore from the bucket alone against the same restore from the local store. The
 * archive is built with StreamWriter (row 10's redis-benchmark-like writes), uploaded to a real
 * S3-compatible server (s3rver, its own process) by rf's own uploader, then `rf restore --until
 * latest --out` runs from `--store` and from `--repo` (which fetches the base and packs first).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { silentLogger } from '../../dist/logger.js';
import { RepoClient } from '../../dist/repo/client.js';
import { RepoUploader } from '../../dist/repo/uploader.js';
import { parseRepoUrl } from '../../dist/repo/url.js';
import { Store } from '../../dist/store/store.js';
import { freePort, removeDir, spawnTracked, stopProcess, tempDir, waitFor } from './env.mjs';
import { fmtBytes, fmtCount, fmtRatio, fmtSeconds, row } from './format.mjs';
import { build } from './index.mjs';
import { rf } from './rf.mjs';
import { SOURCE } from './store.mjs';

const S3_ENV = {
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_REGION: 'us-east-1',
};
const BUCKET = 'rf-bench';

async function startS3(dir) {
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

/** Best of `reps` runs; `args` is called for each run, so each gets its own --out directory. */
async function best(argsFor, reps) {
  let fastest = null;
  for (let r = 0; r < reps; r++) {
    const args = argsFor();
    const res = await rf(args, { env: { ...process.env, ...S3_ENV } });
    if (res.code !== 0)
      throw new Error(`rf ${args.join(' ')} exited ${res.code}: ${res.stderr.slice(-400)}`);
    if (fastest === null || res.ms < fastest.ms) fastest = res;
  }
  return fastest;
}

export async function repoRows(cfg, _want, progress) {
  const { writes, reps } = cfg.repo;
  const dir = await tempDir('repo');
  let s3 = null;
  try {
    Object.assign(process.env, S3_ENV);
    s3 = await startS3(path.join(dir, 's3'));
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
    const local = await best(
      () => ['restore', '--store', store, '--until', 'latest', '--out', out()],
      reps,
    );
    const repoFlags = ['--repo', url, '--s3-endpoint', s3.endpoint, '--s3-path-style'];
    const bucket = await best(
      () => ['restore', ...repoFlags, '--until', 'latest', '--out', out()],
      reps,
    );
    const ratio = bucket.ms / local.ms;
    return [
      row({
        id: '12',
        name: 'restore from the bucket vs the local store',
        workload: `rf restore --until latest --out, ${fmtCount(writes)} redis-benchmark-like writes (${fmtBytes(built.streamBytes)} of stream, ${fmtBytes(uploaded)} in the bucket) over an empty base; s3rver on this host; best of ${reps}`,
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
    ];
  } finally {
    if (s3 !== null) await stopProcess(s3.child);
    await removeDir(dir);
  }
}
