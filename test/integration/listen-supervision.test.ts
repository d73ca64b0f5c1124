import { readdir } from 'node:fs/promises';
import path from 'node:path';
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

  it('a master that drops rf mid-snapshot on the first sync: rf retries, and no base or timeline is left of the cut transfer', async () => {
    // rdb-key-save-delay slows the snapshot (µs per key) so the test can cut it mid-transfer, as
    // the master does itself when a replica's output buffer passes its limit.
    const master = await scope.master(['--rdb-key-save-delay', '200']);
    const c = await master.client();
    await c.call('DEBUG', 'POPULATE', '20000', 'key', '64');
    const store = await scope.storeDir();
    const d = scope.daemon(['--source', master.url, '--store', store]);
    await d.waitForLog((l) => l.msg === 'full resync (+FULLRESYNC): receiving a new base');
    await c.call('CLIENT', 'KILL', 'TYPE', 'replica');
    const lost = await d.waitForLog((l) => l.msg === 'replication connection lost; resuming');
    expect(lost).toMatchObject({
      error: { code: 'RF_CONNECT' },
      durableOffset: null,
      hint: expect.stringContaining('client-output-buffer-limit replica'),
    });
    expect(d.child.exitCode).toBeNull();
    await c.call('CONFIG', 'SET', 'rdb-key-save-delay', '0');
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    await c.call('SET', 'after', 'the-retry');
    await caughtUp(master);
    expect((await d.stop()).code).toBe(0);
    const info = JSON.parse((await rf(['info', '--json', '--store', store])).stdout);
    const [source] = info.sources;
    expect(source.timelines).toHaveLength(1);
    expect(source.bases).toHaveLength(1);
    expect(source.gaps).toEqual([]);
    const verify = await rf(['verify', '--store', store]);
    expect(verify.code).toBe(0);
    expect(await readdir(path.join(store, 'tmp'))).toEqual([]);
    expect(await readdir(path.join(store, 'bases', 'default'))).toHaveLength(1);
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
