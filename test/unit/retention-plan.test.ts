import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { planRestore } from '../../src/restore/locate.js';
import { pruneArchive } from '../../src/retention/prune.js';
import { Archive } from '../../src/store/archive.js';
import { parseArgs } from '../../src/store/commands.js';
import { keys } from '../../src/store/keys.js';
import { json, Store } from '../../src/store/store.js';
import type { BaseMeta, DurableState, Timeline } from '../../src/store/types.js';
import { StreamWriter } from '../../src/store/writer.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * Retention against a hand-built archive, where the awkward case is forced: a fresh base taken
 * exactly at the end of the segment that holds the window's cut.
 */
const SRC = 'default';
const REPLID = 'd'.repeat(40);

function base(offset: number, takenAt: number): BaseMeta {
  return {
    timeline: 1,
    offset,
    replid: REPLID,
    file: `bases/${SRC}/x-${offset}.rdb`,
    bytes: 1,
    sha256: '',
    rdbVersion: 10,
    takenAt,
    completedAt: takenAt,
    via: offset === 0 ? 'full-sync' : 'rdb-only',
    transfer: 'disk',
  };
}

let dir: string;
let store: Store;
beforeEach(async () => {
  dir = await makeTempDir('rf-unit-ret-');
  store = await Store.open(dir, { create: true });
});
afterEach(async () => {
  await store.close();
  await removeTempDir(dir);
});

async function build(): Promise<{ firstEnd: number }> {
  const timeline: Timeline = {
    id: 1,
    replid: REPLID,
    replids: [{ replid: REPLID, from: 1 }],
    baseOffset: 0,
    startedAt: 500,
    reason: 'initial',
    durableOffset: 0,
    lastTime: 500,
    segments: 0,
    bytes: 0,
  };
  const state: DurableState = {
    timeline: 1,
    replid: REPLID,
    durableOffset: 0,
    db: 0,
    multiAt: null,
    lastTime: 500,
  };
  await store.batch([
    {
      type: 'put',
      key: keys.source(SRC),
      value: json.encode({ name: SRC, url: 'redis://x:1', createdAt: 0 }),
    },
    { type: 'put', key: keys.timeline(SRC, 1), value: json.encode(timeline) },
    { type: 'put', key: keys.state(SRC), value: json.encode(state) },
    { type: 'put', key: keys.base(SRC, 1, 0), value: json.encode(base(0, 500)) },
  ]);
  const w = new StreamWriter(store, SRC, timeline, state, {
    maxSegmentBytes: 1 << 20,
    log: silentLogger(),
  });
  let offset = 1;
  const add = (time: number, ...args: string[]) => {
    const f = encodeCommand(args);
    w.append(offset, f, parseArgs(f), time);
    offset += f.length;
  };
  add(1000, 'SELECT', '0');
  add(1000, 'SET', 'a', '1');
  await w.flush();
  const firstEnd = offset - 1;
  // A fresh base at exactly the end of that segment, taken later.
  await store.batch([
    { type: 'put', key: keys.base(SRC, 1, firstEnd), value: json.encode(base(firstEnd, 1500)) },
  ]);
  add(2000, 'SET', 'b', '2');
  await w.flush();
  return { firstEnd };
}

describe('pruneArchive', () => {
  it("keeps the segment holding the window's cut even when a base sits at its very end", async () => {
    const { firstEnd } = await build();
    const archive = new Archive(store);
    const before = await planRestore(archive, SRC, 1600);
    expect(before.base.offset).toBe(firstEnd);
    expect(before.cut.offset).toBe(firstEnd);

    const result = await pruneArchive(store, SRC, 1600, 1000, silentLogger());
    expect(result.basesDeleted).toBe(1);
    const after = await planRestore(archive, SRC, 1600);
    expect(after.base.offset).toBe(firstEnd);
    expect(after.cut.offset).toBe(firstEnd);
    expect((await planRestore(archive, SRC, 2000)).cut.offset).toBeGreaterThan(firstEnd);
    // Before the window's base: refused, not silently served from somewhere else.
    await expect(planRestore(archive, SRC, 1200)).rejects.toMatchObject({
      code: 'RF_TIME_OUT_OF_RANGE',
    });
  });

  it('serves a time with no entry left before it from the latest base taken by then', async () => {
    const { firstEnd } = await build();
    const archive = new Archive(store);
    // Drop the first segment by hand, as an older retention would have.
    const seg = await archive.segmentAtOffset(SRC, 1, 1);
    await store.batch([
      { type: 'del', key: keys.segment(SRC, 1, seg!.start) },
      { type: 'del', key: keys.data(SRC, 1, seg!.start) },
      { type: 'del', key: keys.time(SRC, 1, seg!.lastTime, seg!.start) },
      { type: 'del', key: keys.base(SRC, 1, 0) },
    ]);
    const plan = await planRestore(archive, SRC, 1600);
    expect(plan.base.offset).toBe(firstEnd);
    expect(plan.cut.offset).toBe(firstEnd);
  });
});
