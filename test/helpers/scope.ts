import path from 'node:path';
import { afterEach } from 'vitest';
import { replicationInfo, waitFor } from './load.js';
import { type RedisServer, startRedis } from './redis.js';
import { RfDaemon } from './rf.js';
import { makeTempDir, removeTempDir } from './tmp.js';

/**
 * What a test file starts and must stop: masters, stores, rf listen daemons. Everything made
 * through it is stopped or removed after each test, last made first.
 */
export function testScope() {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch {
        // One cleanup that fails does not keep the others from running.
      }
    }
  });
  return {
    defer(fn: () => unknown): void {
      cleanups.push(fn);
    },
    /** A real redis-server whose diskless syncs start at once. */
    async master(args: string[] = []): Promise<RedisServer> {
      const r = await startRedis({ args: ['--repl-diskless-sync-delay', '0', ...args] });
      cleanups.push(() => r.stop());
      return r;
    },
    /** A store path inside a new temp dir (the store itself is not created). */
    async storeDir(): Promise<string> {
      const dir = await makeTempDir('rf-store-');
      cleanups.push(() => removeTempDir(dir));
      return path.join(dir, 'store');
    },
    /** `rf listen` with these arguments, killed after the test if it still runs. */
    daemon(args: string[], env: NodeJS.ProcessEnv = {}): RfDaemon {
      const d = RfDaemon.start(args, env);
      cleanups.push(() => d.stop('SIGKILL'));
      return d;
    },
  };
}

/** Waits until the master counts rf as an online replica that has ACKed everything; its offset. */
export async function caughtUp(r: RedisServer, timeoutMs = 20_000): Promise<number> {
  const c = await r.client();
  let offset = -1;
  await waitFor(
    async () => {
      const info = await replicationInfo(c);
      offset = info.masterOffset;
      return (
        info.replicas.length === 1 &&
        info.replicas[0]!.state === 'online' &&
        info.replicas[0]!.offset === info.masterOffset
      );
    },
    'rf to acknowledge master_repl_offset',
    timeoutMs,
  );
  return offset;
}

/**
 * A moment after every write rf has acknowledged so far and before any write that follows,
 * with the archive reaching past it: a PUBLISH is propagated and archived, and creates no key.
 */
export async function moment(r: RedisServer): Promise<number> {
  await caughtUp(r);
  const at = Date.now();
  await waitFor(() => Date.now() > at, 'the clock to move past the checkpoint', 1_000, 1);
  await (await r.client()).call('PUBLISH', 'rf-test', 'checkpoint');
  await caughtUp(r);
  return at;
}
