import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/load.js';
import { bootedDigest, freePort } from '../helpers/redis.js';
import { QUICK_LOCAL_RETAIN, restorableThrough } from '../helpers/repo-archive.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { S3_ENV, type S3Server, startS3 } from '../helpers/s3.js';
import { scrape } from '../helpers/scrape.js';
import {
  pausedFailover,
  rfHolds,
  startSentinels,
  type TestSentinels,
} from '../helpers/sentinel.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { workloadPhase } from '../helpers/workload.js';

/**
 * rf listen --sentinel --repo against a real master, a real replica, three real sentinels and a
 * real S3-compatible server: the archive is uploaded as rf listen --source uploads it, across a
 * SENTINEL FAILOVER; SIGTERM drains the uploads; then the local store is deleted and every
 * checkpoint restores from the bucket alone to the DEBUG DIGEST the master had.
 */

let sentinels: TestSentinels;
let s3: S3Server;
let work: string;
let store: string;
let keyFile: string;
let repoFlags: string[];
let metricsPort = 0;
const checkpoints: Array<{ t: number; digest: string; label: string }> = [];

function startDaemon(): RfDaemon {
  return RfDaemon.start(
    [
      ...sentinels.args,
      '--master-name',
      sentinels.name,
      '--store',
      store,
      '--flush-interval',
      '10',
      '--segment-size',
      '16k',
      '--metrics',
      `127.0.0.1:${metricsPort}`,
      ...repoFlags,
      '--repo-key-file',
      keyFile,
    ],
    S3_ENV,
  );
}

/** A quiet moment: the master's digest once rf holds every write, T just after. */
async function checkpoint(label: string): Promise<void> {
  const c = await (await sentinels.master()).client();
  await rfHolds(c);
  const digest = String(await c.call('DEBUG', 'DIGEST'));
  const t = Date.now();
  await restorableThrough(store, new Date(t).toISOString());
  checkpoints.push({ t, digest, label });
}

/** One series of the daemon's /metrics (the one source: no label), or null. */
async function metric(name: string): Promise<number | null> {
  return (
    (await scrape(`http://127.0.0.1:${metricsPort}/metrics`)).find((m) => m.name === name)?.value ??
    null
  );
}

let daemon: RfDaemon;
let stopped: { code: number | null };

beforeAll(async () => {
  sentinels = await startSentinels();
  s3 = await startS3();
  work = await makeTempDir('rf-sentinel-repo-');
  store = path.join(work, 'store');
  keyFile = path.join(work, 'repo.key');
  await fs.writeFile(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  repoFlags = s3.flags('sentinel/cache');
  metricsPort = await freePort();
  await workloadPhase(await (await sentinels.master()).client(), 0);
  daemon = startDaemon();
  await daemon.waitForLog((l) => l.msg === 'first timeline started from the base', 60_000);
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  await sentinels?.stop();
  await s3?.stop();
  if (work) await removeTempDir(work);
});

describe('rf listen --sentinel --repo', () => {
  it('uploads across a SENTINEL FAILOVER, reporting the backlog, and drains on SIGTERM', async () => {
    const original = await sentinels.master();
    const oc = await original.client();
    await workloadPhase(oc, 1);
    await checkpoint('before the failover');
    await workloadPhase(oc, 2);
    await checkpoint('just before the failover');

    const logFrom = daemon.lines.length;
    const { promoted } = await pausedFailover(sentinels);
    expect(promoted.port).not.toBe(original.port);
    await daemon.waitForLog(
      (l) =>
        l.msg === 'partial resync accepted (+CONTINUE): same timeline, no gap' &&
        l.master === `127.0.0.1:${promoted.port}`,
      60_000,
      logFrom,
    );
    await oc.call('CLIENT', 'UNPAUSE');
    const nc = await promoted.client();
    await workloadPhase(nc, 3);
    await checkpoint('after the failover');
    await workloadPhase(nc, 4);
    await checkpoint('later');

    // The uploads are reported as rf listen --source reports them: metrics and rf info.
    await waitFor(
      async () => ((await metric('rf_repo_uploaded_bytes_total')) ?? 0) > 0,
      'rf_repo_uploaded_bytes_total to count the uploads',
    );
    expect(await metric('rf_repo_backlog_bytes')).not.toBeNull();
    expect(await metric('rf_repo_errors_total')).toBe(0);
    const info = await rf(['info', '--store', store, '--json']);
    expect(info.code, info.stderr).toBe(0);
    const source = (
      JSON.parse(info.stdout) as {
        sources: Array<{ name: string; repo: { repo: string; backlogBytes: number } | null }>;
      }
    ).sources.find((s) => s.name === 'default');
    expect(source?.repo?.repo).toBe(repoFlags[1]);

    stopped = await daemon.stop('SIGTERM');
    expect(stopped.code, daemon.output).toBe(0);
    expect(
      daemon.lines.some((l) => l.msg === 'repo: every sealed part is in the bucket'),
      daemon.output,
    ).toBe(true);
    expect(checkpoints).toHaveLength(4);
    expect(new Set(checkpoints.map((c) => c.digest)).size).toBe(4);
  }, 240_000);

  it('restores every checkpoint from the bucket alone, the store deleted', async () => {
    await fs.rm(store, { recursive: true, force: true });
    const flags = [...repoFlags, '--repo-key-file', keyFile];
    const info = await rf(['info', ...flags, '--json'], { env: S3_ENV });
    expect(info.code, info.stderr).toBe(0);
    const sources = (JSON.parse(info.stdout) as { sources: Array<{ name: string }> }).sources;
    expect(sources.map((s) => s.name)).toEqual(['default']);
    for (const [i, cp] of checkpoints.entries()) {
      const out = path.join(work, `out-${i}`);
      const res = await rf(['restore', ...flags, '--until', `@${cp.t / 1000}`, '--out', out], {
        env: S3_ENV,
        timeoutMs: 60_000,
      });
      expect(res.code, `${cp.label}: ${res.stdout}\n${res.stderr}`).toBe(0);
      expect(await bootedDigest(out), cp.label).toBe(cp.digest);
    }
    const verify = await rf(['verify', ...flags], { env: S3_ENV, timeoutMs: 60_000 });
    expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);
  }, 180_000);

  it('--local-retain: what the bucket holds leaves the store, which then names --repo; the bucket restores it', async () => {
    const local = path.join(work, 'local-store');
    const flags = s3.flags('sentinel/local');
    const d = RfDaemon.start(
      [
        ...sentinels.args,
        '--master-name',
        sentinels.name,
        '--store',
        local,
        '--flush-interval',
        '10',
        ...QUICK_LOCAL_RETAIN,
        ...flags,
      ],
      S3_ENV,
    );
    try {
      await d.waitForLog((l) => l.msg === 'first timeline started from the base', 60_000);
      const c = await (await sentinels.master()).client();
      await workloadPhase(c, 10);
      await rfHolds(c);
      const early = { digest: String(await c.call('DEBUG', 'DIGEST')), t: Date.now() };
      await waitFor(() => Date.now() > early.t, 'the clock to move past T', 1_000, 1);
      const bases = d.lines.filter((l) => l.msg === 'fresh base taken').length;
      for (let phase = 11; phase < 14; phase++) await workloadPhase(c, phase);
      await waitFor(
        () => d.lines.filter((l) => l.msg === 'fresh base taken').length >= bases + 2,
        'two fresh bases after the checkpoint',
        60_000,
      );
      let refused: Awaited<ReturnType<typeof rf>> | undefined;
      await waitFor(
        async () => {
          refused = await rf(
            [
              'restore',
              '--store',
              local,
              '--until',
              `@${early.t / 1000}`,
              '--out',
              path.join(work, `early-${Date.now()}`),
            ],
            { timeoutMs: 60_000 },
          );
          return refused.code !== 0;
        },
        'the early checkpoint to leave the store',
        60_000,
      );
      expect(refused?.code, refused?.stderr).toBe(3);
      expect(refused?.stderr).toMatch(/RF_REPO_ONLY/);
      expect(refused?.stderr).toContain('--repo s3://');
      expect(
        d.lines.some(
          (l) => l.msg === 'local retention: removed what the bucket holds from the store',
        ),
        d.output,
      ).toBe(true);
      expect((await d.stop('SIGTERM')).code, d.output).toBe(0);
      const out = path.join(work, 'early-from-bucket');
      const res = await rf(['restore', ...flags, '--until', `@${early.t / 1000}`, '--out', out], {
        env: S3_ENV,
        timeoutMs: 60_000,
      });
      expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
      expect(await bootedDigest(out)).toBe(early.digest);
    } finally {
      await d.stop('SIGKILL');
    }
  }, 180_000);
});
