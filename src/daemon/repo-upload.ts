import { setTimeout as sleep } from 'node:timers/promises';
import { isRfError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { RepoClient } from '../repo/client.js';
import { RepoUploader } from '../repo/uploader.js';
import { offloadHeld } from '../retention/local-retain.js';
import type { BucketHolds } from '../store/offload.js';
import type { Store } from '../store/store.js';
import { type ErrorCounts, messageOf } from './supervise.js';

/** `--repo` as a daemon takes it: the bucket, `--local-retain`, and how long SIGTERM drains. */
export interface RepoSetting {
  client: RepoClient;
  /** Keep locally what restores within this long need; the rest once in the bucket (null: all). */
  localRetainMs: number | null;
  /** Longest SIGTERM waits for the uploads to finish. */
  drainMs: number;
}

/** How long SIGTERM waits for the uploads to finish unless told otherwise. */
export const REPO_DRAIN_MS = 60_000;

/**
 * Checks the bucket before capture starts. A bucket that is not there or refuses the credentials
 * stops rf listen at once (the flags are wrong); one that does not answer only delays the uploads.
 */
export async function probeRepo(client: RepoClient, log: Logger): Promise<void> {
  try {
    // Bounded: a bucket that does not answer must not hold up the start of capture.
    await client.probe(5_000);
  } catch (err) {
    if (!isRfError(err, 'RF_REPO_UNREACHABLE')) throw err;
    log.warn(
      { repo: client.location.url, error: { code: err.code, message: err.message } },
      'repo: the bucket does not answer yet; uploads wait for it',
    );
  }
}

/** The uploader of one source, started: its log lines carry the bucket. */
export function startUploader(store: Store, source: string, client: RepoClient, log: Logger) {
  const uploader = new RepoUploader({
    store,
    source,
    client,
    log: log.child({ repo: client.location.url }),
  });
  uploader.start();
  return uploader;
}

/**
 * --local-retain: what the bucket holds and no restore inside the local window needs leaves
 * the store. A bucket that does not answer holds nothing new, so nothing more leaves. Runs until
 * `signal` aborts; a failed pass is counted under `job` and tried again.
 */
export async function keepLocalWithin(options: {
  store: Store;
  source: string;
  keepMs: number;
  holds: () => BucketHolds | undefined;
  failures: ErrorCounts;
  job: string;
  log: Logger;
  signal: AbortSignal;
}): Promise<void> {
  const { store, source, keepMs, failures, job, log, signal } = options;
  const every = Math.max(1000, Math.min(keepMs / 10, 60_000));
  while (!signal.aborted) {
    const holds = options.holds();
    try {
      if (holds !== undefined) await offloadHeld(store, source, Date.now() - keepMs, holds, log);
    } catch (err) {
      const code = failures.note(job, err);
      log.warn(
        { error: { code, message: messageOf(err) } },
        'local retention failed; will try again',
      );
    }
    await sleep(every, undefined, { signal }).catch(() => undefined);
  }
}
