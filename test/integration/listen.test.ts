import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkRdbFile } from '../../src/rdb/check.js';
import { dumpArchive, writesOf } from '../helpers/archive.js';
import { WriteLoad, waitFor } from '../helpers/load.js';
import { startProxy } from '../helpers/proxy.js';
import { bootedDigest } from '../helpers/redis.js';
import { lacks } from '../helpers/redis-bin.js';
import { type RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp, testScope } from '../helpers/scope.js';

const scope = testScope();
const { master, storeDir } = scope;

function listen(url: string, store: string, extra: string[] = []): RfDaemon {
  return scope.daemon(['--source', url, '--store', store, '--flush-interval', '20', ...extra]);
}

describe('rf listen against a real redis-server', () => {
  for (const diskless of [true, false]) {
    it(`captures a ${diskless ? 'diskless' : 'disk-based'} full sync and every later write`, async () => {
      const r = await master(['--repl-diskless-sync', diskless ? 'yes' : 'no']);
      const c = await r.client();
      for (let i = 0; i < 200; i++) await c.call('SET', `before:${i}`, 'x'.repeat(100));
      const store = await storeDir();
      const d = listen(r.url, store);
      await d.waitForLog((l) => l.msg === 'first timeline started from the base');
      const load = new WriteLoad(c);
      load.start();
      await load.more(1000);
      const sent = await load.stop();
      const masterOffset = await caughtUp(r);
      expect((await d.stop()).code).toBe(0);

      const dump = await dumpArchive(store);
      expect(dump.timelines).toHaveLength(1);
      const t = dump.timelines[0]!;
      expect(t.durableOffset).toBe(masterOffset);
      expect(dump.bases).toHaveLength(1);
      expect(dump.bases[0]!.transfer).toBe(diskless ? 'diskless' : 'disk');
      const rdb = await checkRdbFile(path.join(store, dump.bases[0]!.file));
      expect(rdb.bytes).toBe(dump.bases[0]!.bytes);
      expect(writesOf(dump.entries.get(1)!)).toEqual(WriteLoad.expected(sent));
    });
  }

  it('resumes with +CONTINUE after kill -9 during a load: one timeline, every write once', async () => {
    const r = await master();
    const c = await r.client();
    const store = await storeDir();
    let d = listen(r.url, store);
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const load = new WriteLoad(c);
    load.start();
    await waitFor(() => load.sent > 500, 'the load to get going');
    await d.stop('SIGKILL');
    // Writes while rf is down, then while it resumes: the backlog must hold both.
    await load.more(200);
    d = listen(r.url, store);
    await d.waitForLog((l) => l.msg.startsWith('partial resync accepted (+CONTINUE)'));
    await load.more(200);
    const sent = await load.stop();
    const masterOffset = await caughtUp(r);
    expect((await d.stop()).code).toBe(0);

    const dump = await dumpArchive(store);
    expect(dump.timelines).toHaveLength(1);
    expect(dump.timelines[0]!.durableOffset).toBe(masterOffset);
    expect(writesOf(dump.entries.get(1)!)).toEqual(WriteLoad.expected(sent));
  });

  it('survives ten connection cuts during a load with no gap and no duplicate', async () => {
    const r = await master();
    const proxy = await startProxy(r.port);
    scope.defer(() => proxy.close());
    const c = await r.client();
    const store = await storeDir();
    const d = listen(`redis://127.0.0.1:${proxy.port}`, store);
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const load = new WriteLoad(c);
    load.start();
    for (let i = 0; i < 10; i++) {
      await new Promise((res) => setTimeout(res, 150 + Math.random() * 150));
      const before = d.lines.length;
      proxy.cut();
      await d.waitForLog(
        (l) => l.msg.startsWith('partial resync accepted (+CONTINUE)'),
        20_000,
        before,
      );
    }
    const sent = await load.stop();
    const masterOffset = await caughtUp(r);
    expect((await d.stop()).code).toBe(0);
    expect(proxy.connections).toBeGreaterThanOrEqual(11);

    const dump = await dumpArchive(store);
    expect(dump.timelines).toHaveLength(1);
    expect(dump.timelines[0]!.durableOffset).toBe(masterOffset);
    expect(writesOf(dump.entries.get(1)!)).toEqual(WriteLoad.expected(sent));
  });

  it('starts a new timeline when the master restarts, and rf info shows the gap', async () => {
    const r = await master();
    const c = await r.client();
    const store = await storeDir();
    const d = listen(r.url, store);
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    await c.call('SET', 'a', '1');
    await caughtUp(r);
    const before = d.lines.length;
    await r.restart();
    await d.waitForLog((l) => l.msg === 'new timeline after a gap', 30_000, before);
    const c2 = await r.client();
    await c2.call('SET', 'b', '2');
    await caughtUp(r);

    const info = await rf(['info', '--store', store, '--json']);
    expect(info.code).toBe(0);
    const src = JSON.parse(info.stdout).sources[0];
    expect(src.timelines).toHaveLength(2);
    expect(src.gaps).toHaveLength(1);
    expect(src.gaps[0].reason).toBe('replid-changed');
    expect(Date.parse(src.gaps[0].from)).toBeLessThanOrEqual(Date.parse(src.gaps[0].until));
    expect(src.restorable).toHaveLength(2);
    expect(src.timelines[0].replid).not.toBe(src.timelines[1].replid);
    expect((await d.stop()).code).toBe(0);
    expect(existsSync(path.join(store, 'rf.sock'))).toBe(false);
  });

  it.skipIf(lacks('REPLCONF rdb-only'))(
    'takes fresh bases over a second connection (REPLCONF rdb-only) without interrupting the stream; restores start from them',
    async () => {
      const r = await master();
      const c = await r.client();
      const store = await storeDir();
      const d = listen(r.url, store, ['--base-every', '1s']);
      await d.waitForLog((l) => l.msg === 'first timeline started from the base');
      const load = new WriteLoad(c);
      load.start();
      await d.waitForLog((l) => l.msg === 'fresh base taken', 20_000);
      const sent = await load.stop();
      await caughtUp(r);
      const digest = String(await c.call('DEBUG', 'DIGEST'));
      const at = new Date().toISOString();
      // Capture times have millisecond resolution: a write in the same millisecond as T is at T.
      await new Promise((res) => setTimeout(res, 5));
      await c.call('SET', 'after', 'checkpoint');
      await caughtUp(r);

      const res = await rf(['restore', '--store', store, '--until', at, '--dry-run', '--json']);
      expect(res.code, res.stderr).toBe(0);
      const plan = JSON.parse(res.stdout);
      expect(plan.base.offset).toBeGreaterThan(0);
      const out = path.join(path.dirname(store), 'restored');
      expect((await rf(['restore', '--store', store, '--until', at, '--out', out])).code).toBe(0);
      expect(await bootedDigest(out)).toBe(digest);
      expect((await d.stop()).code).toBe(0);

      const dump = await dumpArchive(store);
      expect(dump.timelines).toHaveLength(1);
      expect(dump.bases.length).toBeGreaterThanOrEqual(2);
      expect(dump.bases.filter((b) => b.via === 'rdb-only').every((b) => b.timeline === 1)).toBe(
        true,
      );
      expect(writesOf(dump.entries.get(1)!).slice(0, sent * 2)).toEqual(WriteLoad.expected(sent));
    },
  );
});
