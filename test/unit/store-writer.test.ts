import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OffsetClock, type OffsetSample } from '../../src/bounds/clock.js';
import { silentLogger } from '../../src/logger.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { FrameScanner } from '../../src/resp/frames.js';
import { Archive } from '../../src/store/archive.js';
import { decodeSegment, encodeSegment, SegmentBuilder } from '../../src/store/codec.js';
import { Kind, kindAt, parseArgs } from '../../src/store/commands.js';
import { keys } from '../../src/store/keys.js';
import { pruneTimeEvidence, sampleOps, samplesFrom, windowOp } from '../../src/store/samples.js';
import { json, Store } from '../../src/store/store.js';
import type { DurableState, SegmentMeta, Timeline } from '../../src/store/types.js';
import { StreamWriter } from '../../src/store/writer.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const cmd = (...args: string[]) => encodeCommand(args);
const R = 'a'.repeat(40);
const sample = (offset: number, sentAt: number, answeredAt = sentAt + 1, replid = R) =>
  ({ replid, offset, sentAt, answeredAt }) satisfies OffsetSample;

function timeline(): Timeline {
  return {
    id: 1,
    replid: 'a'.repeat(40),
    replids: [{ replid: 'a'.repeat(40), from: 101 }],
    baseOffset: 100,
    startedAt: 1_000,
    reason: 'initial',
    durableOffset: 100,
    lastTime: 1_000,
    segments: 0,
    bytes: 0,
  };
}

function state(): DurableState {
  return {
    timeline: 1,
    replid: 'a'.repeat(40),
    durableOffset: 100,
    db: 0,
    multiAt: null,
    lastTime: 1_000,
  };
}

describe('segment codec', () => {
  const entries = [
    { offset: 101, time: 5_000, bytes: cmd('SELECT', '0') },
    { offset: 101 + cmd('SELECT', '0').length, time: 5_003, bytes: cmd('SET', 'k', 'v\r\n*bin') },
  ];
  const data = encodeSegment(entries);
  const last = entries[1]!;
  const meta = (crc: number): SegmentMeta => ({
    timeline: 1,
    start: 101,
    end: last.offset + last.bytes.length - 1,
    firstTime: 5_000,
    lastTime: 5_003,
    count: 2,
    writes: 1,
    crc,
    db: 0,
    multiAt: null,
  });

  it('round-trips entries with their offsets, times and exact bytes', async () => {
    const { crc32 } = await import('node:zlib');
    const decoded = decodeSegment(data, meta(crc32(data)), 'x');
    expect(decoded.entries.map((e) => [e.offset, e.time, e.bytes.toString('latin1')])).toEqual(
      entries.map((e) => [e.offset, e.time, e.bytes.toString('latin1')]),
    );
    expect(parseArgs(decoded.entries[1]!.bytes).map(String)).toEqual(['SET', 'k', 'v\r\n*bin']);
  });

  it('refuses a flipped bit with RF_CHECKSUM', async () => {
    const { crc32 } = await import('node:zlib');
    const good = crc32(data);
    const bad = Buffer.from(data);
    bad[bad.length - 3]! ^= 0x01;
    expect(() => decodeSegment(bad, meta(good), 'x')).toThrow(
      expect.objectContaining({ code: 'RF_CHECKSUM' }),
    );
  });
});

describe('SegmentBuilder', () => {
  it('encodes what encodeSegment does, from runs of any chunks, and again after a reset', () => {
    const frames = Array.from({ length: 5000 }, (_, i) => cmd('SET', `k${i}`, 'v'.repeat(i % 7)));
    const entries = frames.map((bytes, i) => ({ offset: 0, time: 7_000 + (i >> 4), bytes }));
    // The frames lie in two chunks, interleaved with bytes that are not theirs: only the runs of
    // consecutive frames may be copied together.
    const a = Buffer.concat(frames.flatMap((f, i) => (i % 3 === 0 ? [Buffer.from('#'), f] : [f])));
    const b = Buffer.from(a);
    const builder = new SegmentBuilder(64);
    for (const round of [0, 1]) {
      let pos = 0;
      frames.forEach((f, i) => {
        if (i % 3 === 0) pos += 1;
        builder.add(entries[i]!.time, i % 5 === round ? a : b, pos, f.length);
        pos += f.length;
        if (i % 1000 === 999) builder.settle();
      });
      expect(builder.count).toBe(frames.length);
      expect(builder.bytes).toBe(frames.reduce((n, f) => n + f.length, 0));
      expect([builder.firstTime, builder.lastTime]).toEqual([7_000, 7_000 + (4999 >> 4)]);
      expect(builder.encode().equals(encodeSegment(entries))).toBe(true);
      builder.reset();
      expect([builder.count, builder.bytes]).toEqual([0, 0]);
    }
  });
});

describe('SegmentBuilder after a very large entry', () => {
  it('encodes the large segment and the small ones after it exactly', () => {
    const big = cmd('RESTORE', 'k', '0', 'x'.repeat(300_000));
    const small = [cmd('SET', 'a', '1'), cmd('SET', 'b', '2')];
    const builder = new SegmentBuilder(4096);
    builder.add(9_000, big, 0, big.length);
    expect(builder.encode().equals(encodeSegment([{ offset: 0, time: 9_000, bytes: big }]))).toBe(
      true,
    );
    builder.reset();
    for (const [i, f] of small.entries()) builder.add(9_001 + i, f, 0, f.length);
    const entries = small.map((bytes, i) => ({ offset: 0, time: 9_001 + i, bytes }));
    expect(builder.encode().equals(encodeSegment(entries))).toBe(true);
  });
});

describe('StreamWriter', () => {
  let dir: string;
  let store: Store;
  beforeEach(async () => {
    dir = await makeTempDir('rf-unit-');
    store = await Store.open(dir, { create: true });
  });
  afterEach(async () => {
    await store.close();
    await removeTempDir(dir);
  });

  it('commits contiguous segments, tracks db and open MULTI, and indexes them by time', async () => {
    const w = new StreamWriter(store, 'default', timeline(), state(), {
      maxSegmentBytes: 1 << 20,
      log: silentLogger(),
    });
    const frames = [cmd('SELECT', '3'), cmd('SET', 'a', '1'), cmd('MULTI'), cmd('INCR', 'a')];
    let offset = 101;
    let t = 2_000;
    for (const f of frames) {
      w.append(offset, f, parseArgs(f), t);
      offset += f.length;
      t += 10;
    }
    await w.flush();
    expect(w.durableOffset).toBe(offset - 1);
    const tail = [cmd('EXEC'), cmd('PING')];
    for (const f of tail) {
      w.append(offset, f, parseArgs(f), t);
      offset += f.length;
      t += 10;
    }
    await w.flush();

    const archive = new Archive(store);
    const segs: SegmentMeta[] = [];
    for await (const s of archive.segments('default', 1)) segs.push(s);
    expect(segs).toHaveLength(2);
    expect(segs[0]).toMatchObject({ start: 101, db: 0, multiAt: null, count: 4, writes: 2 });
    const multiAt = 101 + frames[0]!.length + frames[1]!.length;
    expect(segs[1]).toMatchObject({ start: segs[0]!.end + 1, db: 3, multiAt, count: 2, writes: 0 });
    const st = json.decode<DurableState>((await store.get(keys.state('default')))!);
    expect(st).toMatchObject({ durableOffset: offset - 1, db: 3, multiAt: null });

    // Time index: the first segment whose last entry is at or after T.
    expect((await archive.segmentAtTime('default', 1, 2_000))?.start).toBe(101);
    expect((await archive.segmentAtTime('default', 1, 2_031))?.start).toBe(segs[1]!.start);
    expect(await archive.segmentAtTime('default', 1, 9_999)).toBeUndefined();
    expect((await archive.segmentBeforeTime('default', 1, 2_035))?.start).toBe(101);
    expect((await archive.segmentAtOffset('default', 1, segs[1]!.start + 3))?.start).toBe(
      segs[1]!.start,
    );
    expect(await archive.segmentAtOffset('default', 1, offset + 10)).toBeUndefined();
  });

  it('stores frames taken from a scanner exactly as the stream carried them', async () => {
    const frames = [
      cmd('SELECT', '2'),
      cmd('MULTI'),
      cmd('SET', 'a', 'x'.repeat(300)),
      cmd('EXEC'),
    ];
    const stream = Buffer.concat(Array.from({ length: 40 }, () => frames).flat());
    const w = new StreamWriter(store, 'default', timeline(), state(), {
      maxSegmentBytes: 4096,
      log: silentLogger(),
    });
    const scanner = new FrameScanner({ startAt: 101 });
    let t = 3_000;
    for (let at = 0; at < stream.length; at += 777) {
      // A copy that is overwritten once scanned: the writer must have settled what it took.
      const chunk = Buffer.from(stream.subarray(at, at + 777));
      scanner.scan(chunk, (f) => w.appendFrame(f, t, kindAt(f.buf, f.nameStart, f.nameLength)));
      w.settle();
      chunk.fill(0);
      t += 1;
      if (w.full) await w.flush();
    }
    await w.flush();
    expect(w.durableOffset).toBe(100 + stream.length);

    const archive = new Archive(store);
    const stored: Buffer[] = [];
    let segments = 0;
    for await (const meta of archive.segments('default', 1)) {
      segments++;
      const data = (await store.get(keys.data('default', 1, meta.start)))!;
      for (const e of decodeSegment(data, meta, 'x').entries) stored.push(e.bytes);
    }
    expect(segments).toBeGreaterThan(1);
    expect(Buffer.concat(stored).equals(stream)).toBe(true);
    expect(stored).toHaveLength(160);
    const st = json.decode<DurableState>((await store.get(keys.state('default')))!);
    expect(st).toMatchObject({ db: 2, multiAt: null });
    expect(kindAt(stored[1]!, 8, 5)).toBe(Kind.multi);
  });

  it('refuses an entry that does not continue the stream', () => {
    const w = new StreamWriter(store, 'default', timeline(), state(), {
      maxSegmentBytes: 1 << 20,
      log: silentLogger(),
    });
    const f = cmd('PING');
    expect(() => w.append(102, f, parseArgs(f), 1)).toThrow(TypeError);
  });

  it('never lets capture time go backwards', async () => {
    const w = new StreamWriter(store, 'default', timeline(), state(), {
      maxSegmentBytes: 1 << 20,
      log: silentLogger(),
    });
    const a = cmd('SET', 'x', '1');
    const b = cmd('SET', 'x', '2');
    w.append(101, a, parseArgs(a), 5_000);
    w.append(101 + a.length, b, parseArgs(b), 4_000);
    await w.flush();
    const archive = new Archive(store);
    const seg = await archive.segmentAtOffset('default', 1, 101);
    const { entries } = await archive.readSegment('default', seg!);
    expect(entries.map((e) => e.time)).toEqual([5_000, 5_000]);
  });

  it('loads the samples from the last one below an offset on, and skips a bad replid', async () => {
    await store.batch(
      sampleOps('default', [
        sample(100, 1_000),
        sample(200, 1_100),
        sample(300, 1_200),
        sample(400, 1_300, 1_301, 'not/a/replid'),
      ]),
    );
    expect(await samplesFrom(store, 'default', R, 250)).toEqual([
      sample(200, 1_100),
      sample(300, 1_200),
    ]);
    expect(await samplesFrom(store, 'default', R, 50)).toHaveLength(3);
    expect(await samplesFrom(store, 'default', 'not/a/replid', 0)).toEqual([]);
  });

  it('the writer stamps entries by the clock and commits their window with the segment', async () => {
    const clock = new OffsetClock();
    const frames = [1, 2, 3, 4].map((i) => cmd('SET', `k${i}`, 'v'));
    const at: number[] = [];
    let o = 101;
    for (const f of frames) {
      at.push(o);
      o += f.length;
    }
    // The master ran k1 by 2_001 and k2 by 2_101 (a snapshot transfer held them back); nothing
    // was sampled between 2_100 and 9_000 (rf stalled), when k3 and k4 had run.
    clock.add(sample(100, 2_000 - 100));
    clock.add(sample(at[0]!, 2_000));
    clock.add(sample(at[1]!, 2_100));
    clock.add(sample(o - 1, 9_000));
    const w = new StreamWriter(store, 'default', timeline(), state(), {
      maxSegmentBytes: 1 << 20,
      log: silentLogger(),
      clock,
    });
    for (const [i, f] of frames.entries()) w.append(at[i]!, f, [Buffer.from('SET')], 9_050 + i);
    await w.flush();
    const archive = new Archive(store);
    const meta = (await archive.segmentAtOffset('default', 1, 101))!;
    const { entries } = await archive.readSegment('default', meta);
    expect(entries.map((e) => e.time)).toEqual([2_001, 2_101, 9_001, 9_001]);
    expect(await archive.imprecise('default')).toEqual([
      {
        timeline: 1,
        firstOffset: at[2]!,
        lastOffset: o - 1,
        from: 2_100,
        until: 9_001,
        entries: 2,
        writes: 2,
      },
    ]);
    expect(await archive.lastImprecise('default', 1)).toMatchObject({ firstOffset: at[2] });
  });

  it("stores the daemon's records (the offset samples) in each segment's batch, asked for once per commit", async () => {
    let asked = 0;
    const w = new StreamWriter(store, 'default', timeline(), state(), {
      maxSegmentBytes: 1 << 20,
      log: silentLogger(),
      withCommit: () => {
        asked++;
        return sampleOps('default', [sample(100 + asked, 7_000 + asked)]);
      },
    });
    const f = cmd('SET', 'k', 'v');
    w.append(101, f, parseArgs(f), 7_500);
    await w.flush();
    // Nothing buffered: no commit, so nothing is asked for.
    await w.flush();
    w.append(101 + f.length, f, parseArgs(f), 7_600);
    await w.flush();
    expect(asked).toBe(2);
    expect(await samplesFrom(store, 'default', R, 0)).toEqual([
      sample(101, 7_001, 7_002),
      sample(102, 7_002, 7_003),
    ]);
  });

  it('retention drops samples and windows older than the window, keeping the last sample of each replid', async () => {
    const other = 'b'.repeat(40);
    await store.batch(
      sampleOps('default', [
        sample(100, 1_000),
        sample(200, 2_000),
        sample(300, 3_000),
        sample(400, 4_000),
        sample(10, 1_500, 1_501, other),
        sample(20, 2_500, 2_501, other),
      ]),
    );
    const win = (firstOffset: number, until: number) => ({
      timeline: 1,
      firstOffset,
      lastOffset: firstOffset + 9,
      from: until - 500,
      until,
      entries: 1,
      writes: 1,
    });
    await store.batch([windowOp('default', win(150, 2_900)), windowOp('default', win(350, 3_500))]);
    expect(await pruneTimeEvidence(store, 'default', 3_000)).toBe(3);
    // 200 is the last sample before the window: it bounds the first writes in it.
    expect((await samplesFrom(store, 'default', R, 0)).map((s) => s.offset)).toEqual([
      200, 300, 400,
    ]);
    expect((await samplesFrom(store, 'default', other, 0)).map((s) => s.offset)).toEqual([20]);
    expect((await new Archive(store).imprecise('default')).map((w) => w.firstOffset)).toEqual([
      350,
    ]);
  });
});
