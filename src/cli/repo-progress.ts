import type { RepoCache } from '../repo/cache.js';
import { formatBytes } from './output.js';
import { Progress } from './progress.js';

/** A progress line (on a terminal) while a command fetches what it needs from the bucket. */
export async function withFetchProgress<T>(cache: RepoCache, fetch: () => Promise<T>): Promise<T> {
  const bar = new Progress('fetch', () => ({
    done: cache.fetchedBytes,
    total: cache.wantedBytes,
    text: `${formatBytes(cache.fetchedBytes)} from ${cache.client.location.url}`,
  })).start();
  try {
    return await fetch();
  } finally {
    bar.stop();
  }
}
