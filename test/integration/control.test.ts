import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startControlServer } from '../../src/daemon/control.js';
import { RemoteKv } from '../../src/daemon/control-client.js';
import { silentLogger } from '../../src/logger.js';
import { type KvRange, type KvReader, Store } from '../../src/store/store.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * What readers see through a running daemon's control socket must be exactly what they would
 * read from the store itself: keys, values byte for byte, order, bounds and limits, across the
 * pages the daemon cuts by count and by size.
 */

async function all(kv: KvReader, range: KvRange): Promise<[string, Buffer][]> {
  const out: [string, Buffer][] = [];
  for await (const entry of kv.entries(range)) out.push(entry);
  return out;
}

describe('the control socket', () => {
  let dir: string;
  let store: Store;
  let server: { close(): Promise<void> };
  let remote: RemoteKv;
  const socket = () => path.join(dir, 'rf.sock');

  beforeEach(async () => {
    dir = await makeTempDir('rf-control-');
    store = await Store.open(path.join(dir, 'store'), { create: true });
    const ops = [];
    // 10 000 small entries (pages cut by count), values with newlines, an empty value, and a few
    // values of 1.5 MB (pages cut by size).
    for (let i = 0; i < 10_000; i++) {
      const value = Buffer.from(`v${i}\n\r\n{"json":${i}}\u0000`);
      ops.push({ type: 'put' as const, key: `k/${String(i).padStart(5, '0')}`, value });
    }
    ops.push({ type: 'put' as const, key: 'k/empty', value: Buffer.alloc(0) });
    for (let i = 0; i < 6; i++) {
      const value = Buffer.alloc(1_500_000, i + 1);
      value.write('\n', 7);
      ops.push({ type: 'put' as const, key: `z/${i}`, value });
    }
    ops.push({ type: 'put' as const, key: 'é/utf8', value: Buffer.from('ü') });
    await store.batch(ops);
    server = await startControlServer(socket(), store, () => ({ up: true }), silentLogger());
    const kv = await RemoteKv.connect(dir, socket());
    if (kv === null) throw new Error('no daemon answered on the control socket');
    remote = kv;
  });

  afterEach(async () => {
    await remote.close();
    await server.close();
    await store.close();
    await removeTempDir(dir);
  });

  it('pages through every entry exactly as the store holds them, both ways, with bounds and limits', async () => {
    const ranges: KvRange[] = [
      {},
      { gte: 'k/00100', lt: 'k/09000' },
      { gt: 'k/00100', lte: 'z/3', reverse: true },
      { gte: 'k/', limit: 5_000 },
      { lt: 'zz', reverse: true, limit: 4_101 },
      { gte: 'z/', lt: 'z0' },
      { gt: 'zzz' },
    ];
    for (const range of ranges) {
      const direct = await all(store, range);
      const through = await all(remote, range);
      expect(through.length, JSON.stringify(range)).toBe(direct.length);
      expect(through.map(([k]) => k)).toEqual(direct.map(([k]) => k));
      const differ = through.filter(([, v], i) => !v.equals(direct[i]![1]));
      expect(differ.map(([k]) => k)).toEqual([]);
    }
    expect((await all(remote, {})).length).toBe(10_008);
  });

  it('gets single values, missing ones as undefined', async () => {
    expect((await remote.get('k/00042'))?.toString()).toBe('v42\n\r\n{"json":42}\u0000');
    expect(await remote.get('k/empty')).toEqual(Buffer.alloc(0));
    expect((await remote.get('z/2'))?.equals((await store.get('z/2'))!)).toBe(true);
    expect((await remote.get('é/utf8'))?.toString()).toBe('ü');
    expect(await remote.get('nope')).toBeUndefined();
    expect(await remote.status()).toEqual({ up: true });
  });

  it('stays usable after a reader stops early while its next page is on the way', async () => {
    let seen = 0;
    for await (const _ of remote.entries({})) {
      if (++seen === 10) break;
    }
    expect(seen).toBe(10);
    expect((await remote.get('k/09999'))?.toString()).toBe('v9999\n\r\n{"json":9999}\u0000');
    expect((await all(remote, { gte: 'z/', lt: 'z0' })).length).toBe(6);
  });
});
