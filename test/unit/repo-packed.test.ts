import { describe, expect, it } from 'vitest';
import type { PackEntry } from '../../src/repo/layout.js';
import { PackedReader, type PackState, packSpans, type Slot } from '../../src/repo/packed.js';
import { keys, prefixEnd } from '../../src/store/keys.js';
import type { KvRange, KvReader } from '../../src/store/store.js';

const SRC = 'src1';

/** A sorted in-memory reader: the reference every walk is compared with. */
function memoryKv(records: [string, Buffer][]): KvReader {
  const sorted = [...records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    dir: '/nowhere',
    get: async (key) => sorted.find(([k]) => k === key)?.[1],
    async *entries(range: KvRange) {
      const inRange = sorted.filter(
        ([k]) =>
          (range.gt === undefined || k > range.gt) &&
          (range.gte === undefined || k >= range.gte) &&
          (range.lt === undefined || k < range.lt) &&
          (range.lte === undefined || k <= range.lte),
      );
      if (range.reverse === true) inRange.reverse();
      const limit = range.limit ?? -1;
      yield* limit >= 0 ? inRange.slice(0, limit) : inRange;
    },
    close: async () => undefined,
  };
}

/** Segments of 100 offsets each, 1 ms apart; `perPack` of them to a pack. */
function archive(packCount: number, perPack: number) {
  const spill: Buffer[] = [];
  let spilled = 0;
  const put = (value: Buffer) => {
    spill.push(value);
    spilled += value.length;
    return spilled - value.length;
  };
  const packs: { entry: PackEntry; records: [string, Buffer][] }[] = [];
  let seg = 0;
  for (let p = 0; p < packCount; p++) {
    const records: [string, Buffer][] = [];
    const first = seg;
    for (let i = 0; i < perPack; i++, seg++) {
      const start = seg * 100 + 1;
      const time = 1_000 + seg;
      records.push(
        [keys.segment(SRC, 1, start), Buffer.from(`meta ${start}`)],
        [keys.data(SRC, 1, start), Buffer.from(`data ${start}`)],
        [keys.keyIndex(SRC, 1, start), Buffer.from(`kix ${start}`)],
        [keys.time(SRC, 1, time, start), Buffer.alloc(0)],
      );
    }
    const entry: PackEntry = {
      name: `${SRC}/seg/00000001/${p}`,
      kind: 'seg',
      group: 1,
      start: first * 100 + 1,
      end: seg * 100,
      firstTime: 1_000 + first,
      lastTime: 1_000 + seg - 1,
      bytes: 0,
      stored: 0,
      storedSha256: '',
    };
    packs.push({ entry, records });
  }
  const base: [string, Buffer][] = [
    [keys.source(SRC), Buffer.from('{}')],
    [keys.timeline(SRC, 1), Buffer.from('tl')],
    [keys.state(SRC), Buffer.from('state')],
    [keys.base(SRC, 1, 0), Buffer.from('base')],
  ];
  const read = new Set<number>();
  const failing = new Set<number>();
  const states: PackState[] = packs.map(({ entry, records }, i) => {
    const slots: Slot[] = records
      .map(([k, v]): Slot => [k, put(v), v.length])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return {
      entry,
      spans: packSpans(entry),
      get arrived() {
        read.add(i);
        return failing.has(i)
          ? Promise.reject(new Error(`pack ${i} is damaged`))
          : Promise.resolve(slots);
      },
    };
  });
  const all = Buffer.concat(spill);
  const reader = new PackedReader(
    memoryKv(base),
    () => states,
    async (at, length) => Buffer.from(all.subarray(at, at + length)),
    async () => undefined,
  );
  const reference = memoryKv([...base, ...packs.flatMap((p) => p.records)]);
  return { reader, reference, read, failing };
}

async function collect(kv: KvReader, range: KvRange): Promise<string[]> {
  const out: string[] = [];
  for await (const [k, v] of kv.entries(range)) out.push(`${k}=${v.toString()}`);
  return out;
}

describe('PackedReader: the manifest and the packs as one store', () => {
  it('walks every range, forward and in reverse, with and without a limit, as one store would', async () => {
    const { reader, reference } = archive(4, 3);
    const prefix = keys.sourcePrefix(SRC);
    const points = [
      prefix,
      keys.segmentPrefix(SRC, 1),
      keys.segment(SRC, 1, 401),
      keys.segment(SRC, 1, 450),
      keys.data(SRC, 1, 1101),
      keys.timeFrom(SRC, 1, 1_005),
      keys.timeFrom(SRC, 1, 1_100),
      keys.keyIndex(SRC, 1, 701),
      keys.state(SRC),
      prefixEnd(prefix),
    ];
    let checked = 0;
    for (const a of points) {
      for (const b of points) {
        if (a > b) continue;
        for (const reverse of [false, true]) {
          for (const limit of [undefined, 1, 5]) {
            for (const range of [
              { gte: a, lt: b },
              { gt: a, lte: b },
            ] as KvRange[]) {
              const r = { ...range, reverse, ...(limit === undefined ? {} : { limit }) };
              expect(await collect(reader, r), JSON.stringify(r)).toEqual(
                await collect(reference, r),
              );
              checked++;
            }
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(300);
    for (const key of [keys.data(SRC, 1, 501), keys.state(SRC), keys.data(SRC, 1, 502)]) {
      expect((await reader.get(key))?.toString()).toBe((await reference.get(key))?.toString());
    }
  });

  it('waits only for the packs a read reaches', async () => {
    const { reader, read } = archive(4, 3);
    // The replay's first step: the segments from offset 1 on, the first one only.
    const prefix = keys.segmentPrefix(SRC, 1);
    for await (const _ of reader.entries({ gte: prefix, lt: prefixEnd(prefix), limit: 1 })) break;
    expect([...read]).toEqual([0]);
    read.clear();
    // The planner's seek by time, then the segment it names.
    const [hit] = await collect(reader, {
      gte: keys.timeFrom(SRC, 1, 1_010),
      lt: prefixEnd(keys.timePrefix(SRC, 1)),
      limit: 1,
    });
    expect(hit).toContain(keys.time(SRC, 1, 1_010, 1001));
    expect(await reader.get(keys.data(SRC, 1, 1001))).toEqual(Buffer.from('data 1001'));
    expect([...read]).toEqual([3]);
    read.clear();
    // A reverse seek for the segment before another.
    const [before] = await collect(reader, {
      gte: prefix,
      lt: keys.segment(SRC, 1, 601),
      reverse: true,
      limit: 1,
    });
    expect(before).toBe(`${keys.segment(SRC, 1, 501)}=meta 501`);
    expect([...read]).toEqual([1]);
    read.clear();
    // Records outside every pack: none is waited for.
    expect(await collect(reader, { gte: keys.timelinePrefix(SRC), lt: keys.state(SRC) })).toEqual(
      [],
    );
    expect(await reader.get(keys.state(SRC))).toEqual(Buffer.from('state'));
    expect([...read]).toEqual([]);
  });

  it('fails a read that reaches a damaged pack, and only such a read', async () => {
    const { reader, failing } = archive(3, 2);
    failing.add(2);
    const dat = `s/${SRC}/dat/00000001/`;
    const first = await collect(reader, { gte: dat, lt: keys.data(SRC, 1, 401) });
    expect(first).toHaveLength(4);
    await expect(collect(reader, { gte: dat, lt: prefixEnd(dat) })).rejects.toThrow(
      'pack 2 is damaged',
    );
    await expect(reader.get(keys.data(SRC, 1, 501))).rejects.toThrow('pack 2 is damaged');
  });
});
