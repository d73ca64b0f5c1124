import path from 'node:path';
import { expect } from 'vitest';
import { waitFor } from './load.js';
import { bootedDigest, type RedisServer } from './redis.js';
import { rf } from './rf.js';
import { S3_ENV } from './s3.js';
import { caughtUp } from './scope.js';

/**
 * rf listen flags under which --local-retain shows within seconds: small segments, a fresh base
 * every 700 ms, and a local window of 1 s, so a moment a few seconds old needs only the bucket.
 */
export const QUICK_LOCAL_RETAIN = [
  '--segment-size',
  '2k',
  '--base-every',
  '700ms',
  '--local-retain',
  '1s',
];

export interface Checkpoint {
  at: string;
  digest: string;
}

/**
 * Once rf has acknowledged every write: the master's DEBUG DIGEST and the time. Returns once
 * rf has seen the master idle past that time (its `seen` record), so writes that reach rf late
 * after a SIGKILL or a cut cannot make the checkpoint an imprecise time.
 */
export async function checkpoint(master: RedisServer, store: string): Promise<Checkpoint> {
  await caughtUp(master);
  const c = await master.client();
  const digest = String(await c.call('DEBUG', 'DIGEST'));
  const at = new Date(Date.now()).toISOString();
  await restorableThrough(store, at);
  return { at, digest };
}

/**
 * Until the store's one source is restorable up to `at` (ISO): rf has seen the master idle past
 * it (its `seen` record), so a stop right after leaves `at` inside the archive.
 */
export async function restorableThrough(store: string, at: string): Promise<void> {
  await waitFor(async () => {
    const r = await rf(['info', '--store', store, '--json']);
    const until = (
      JSON.parse(r.stdout) as { sources: { restorable: { until: string }[] }[] }
    ).sources[0]?.restorable.at(-1)?.until;
    return until !== undefined && until >= at;
  }, 'the store to be restorable up to the checkpoint');
}

/** `rf restore --repo … --until cp.at --out`, booted: its digest must be the checkpoint's. */
export async function expectRestoresFromBucket(
  repoFlags: string[],
  checkpoints: readonly Checkpoint[],
  work: string,
): Promise<void> {
  for (const [i, cp] of checkpoints.entries()) {
    const out = path.join(work, `out-${i}-${Date.now()}`);
    const r = await rf(['restore', ...repoFlags, '--until', cp.at, '--out', out], {
      env: S3_ENV,
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(await bootedDigest(out)).toBe(cp.digest);
  }
}
