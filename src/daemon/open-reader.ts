import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRfError, RfError } from '../errors.js';
import { type KvReader, Store, storePaths } from '../store/store.js';
import { RemoteKv } from './control-client.js';

/**
 * Opens a store for reading: through the running `rf listen` when one owns it, else directly.
 * Never fails with a lock error while a daemon is there to ask.
 */
export async function openReader(dir: string): Promise<KvReader> {
  const { socket } = storePaths(dir);
  const viaDaemon = async () => (existsSync(socket) ? RemoteKv.connect(dir, socket) : null);
  const remote = await viaDaemon();
  if (remote) return remote;
  for (let attempt = 0; ; attempt++) {
    try {
      return await Store.open(dir, { create: false });
    } catch (err) {
      if (!isRfError(err, 'RF_STORE_LOCKED')) throw err;
      // The owner may be starting and not listening yet: ask it again for a few seconds.
      const again = await viaDaemon();
      if (again) return again;
      if (attempt >= 20) {
        throw new RfError(
          'RF_STORE_LOCKED',
          `the store ${dir} is held by a process that does not answer on ${socket}`,
          {
            details: { store: dir, socket },
            hint: 'another rf command holds the store; wait for it to finish, or check for a stuck `rf listen`',
            cause: err,
          },
        );
      }
      await sleep(250);
    }
  }
}
