import { afterEach, describe, expect, it, vi } from 'vitest';
import { Listener } from '../../src/daemon/listener.js';
import { isRfError, RfError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { Archive } from '../../src/store/archive.js';
import { Store } from '../../src/store/store.js';
import { listenConfig } from '../helpers/listen-config.js';
import { rf } from '../helpers/rf.js';
import { caughtUp, testScope } from '../helpers/scope.js';

const scope = testScope();

afterEach(() => {
  vi.restoreAllMocks();
});

describe('rf listen supervises what runs beside the stream', () => {
  it('a background task that fails stops the daemon with its RF_ code, not an unhandled rejection', async () => {
    const master = await scope.master();
    const store = await scope.storeDir();
    // Fresh bases are checked every 200 ms: the store read that decides whether one is due fails.
    const listener = new Listener(
      listenConfig(master, store, { baseEveryMs: 2000 }),
      silentLogger(),
    );
    const running = listener.run();
    scope.defer(async () => {
      listener.stop();
      await running.catch(() => undefined);
    });
    await caughtUp(master);
    vi.spyOn(Archive.prototype, 'bases').mockRejectedValue(
      new RfError('RF_CORRUPT', 'a base record does not decode'),
    );
    const err = await running.then(
      () => null,
      (e: unknown) => e,
    );
    expect(isRfError(err, 'RF_CORRUPT')).toBe(true);
    expect(listener.status().errors).toMatchObject({ RF_CORRUPT: 1 });
    expect(listener.status().lastError).toMatchObject({ job: 'fresh bases', code: 'RF_CORRUPT' });
  });

  it('waits, logged and bounded, for a reader that holds the store, then starts', async () => {
    const master = await scope.master();
    const store = await scope.storeDir();
    const first = scope.daemon(['--source', master.url, '--store', store]);
    await first.waitForLog((l) => l.msg === 'first timeline started from the base');
    expect((await first.stop()).code).toBe(0);
    // A reader with the store open itself, as rf verify is when no daemon runs.
    const reader = await Store.open(store, { create: false });
    let closed = false;
    scope.defer(async () => {
      if (!closed) await reader.close();
    });
    const d = scope.daemon(['--source', master.url, '--store', store]);
    await d.waitForLog((l) => l.msg.startsWith('the store is held by another process'));
    // Still waiting, not gone: a restart loop under systemd is what this avoids.
    const c = await master.client();
    await c.call('SET', 'while', 'waiting');
    expect(d.child.exitCode).toBeNull();
    await reader.close();
    closed = true;
    await d.waitForLog((l) => l.msg === 'store free; starting');
    await caughtUp(master);
    expect((await d.stop()).code).toBe(0);
    const log = await rf(['log', '--json', '--store', store, '--key', 'while']);
    expect(log.stdout).toContain('waiting');
  });
});
