import { describe, expect, it } from 'vitest';
import { isRfError } from '../../src/errors.js';
import { encodeCommand } from '../../src/resp/encode.js';
import {
  type Frame,
  FrameScanner,
  type FrameScannerOptions,
  type ScannedFrame,
} from '../../src/resp/frames.js';
import { commandName } from '../../src/store/commands.js';

/** Deterministic PRNG (mulberry32) so a failing random split can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomSplit(input: Buffer, seed: number, maxChunk = 17): Buffer[] {
  const random = prng(seed);
  const chunks: Buffer[] = [];
  for (let at = 0; at < input.length; ) {
    const size = 1 + Math.floor(random() * maxChunk);
    chunks.push(input.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/**
 * Every case runs as one chunk, byte by byte and in random splits (node-redis decoder tests do the
 * first two). Chunks are copies, so a frame that kept a view of a reused buffer would show it.
 */
const modes: Array<[string, (input: Buffer) => Buffer[]]> = [
  ['one chunk', (input) => [Buffer.from(input)]],
  ['byte by byte', (input) => [...input].map((byte) => Buffer.from([byte]))],
  ['random splits (seed 1)', (input) => randomSplit(input, 1).map((c) => Buffer.from(c))],
  ['random splits (seed 2)', (input) => randomSplit(input, 2, 5).map((c) => Buffer.from(c))],
];

function scan(
  chunks: Buffer[],
  options?: FrameScannerOptions,
): { frames: Frame[]; scanner: FrameScanner } {
  const scanner = new FrameScanner(options);
  const frames: Frame[] = [];
  for (const chunk of chunks) frames.push(...scanner.push(chunk));
  return { frames, scanner };
}

/** Frames with Buffers turned into text, so a mismatch reads well in the test output. */
function plain(frames: Frame[]): unknown[] {
  return frames.map((frame) =>
    frame.kind === 'command'
      ? {
          kind: frame.kind,
          start: frame.start,
          length: frame.length,
          bytes: frame.bytes.toString('latin1'),
          args: frame.args.map((arg) => arg.toString('latin1')),
        }
      : { ...frame, bytes: frame.bytes.toString('latin1') },
  );
}

function command(start: number, raw: string, args: string[]): unknown {
  return { kind: 'command', start, length: Buffer.byteLength(raw, 'latin1'), bytes: raw, args };
}

function protocolErrorOf(fn: () => unknown): { position: unknown; frameStart: unknown } {
  try {
    fn();
  } catch (err) {
    if (!isRfError(err, 'RF_PROTOCOL')) throw err;
    return { position: err.details.position, frameStart: err.details.frameStart };
  }
  throw new Error('expected an RF_PROTOCOL error, nothing was thrown');
}

const SET = '*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n';
const PING = '*1\r\n$4\r\nping\r\n';

describe('FrameScanner', () => {
  for (const [mode, split] of modes) {
    describe(mode, () => {
      it('yields a command with its exact start, length, bytes and args', () => {
        const { frames, scanner } = scan(split(Buffer.from(SET, 'latin1')));
        expect(plain(frames)).toEqual([command(0, SET, ['SET', 'key', 'value'])]);
        expect(scanner.position).toBe(SET.length);
        expect(scanner.pendingBytes).toBe(0);
      });

      it('counts positions from startAt across consecutive frames', () => {
        const input = Buffer.from(PING + SET + PING, 'latin1');
        const { frames, scanner } = scan(split(input), { startAt: 1001 });
        expect(plain(frames)).toEqual([
          command(1001, PING, ['ping']),
          command(1001 + 14, SET, ['SET', 'key', 'value']),
          command(1001 + 14 + SET.length, PING, ['ping']),
        ]);
        expect(scanner.position).toBe(1001 + input.length);
      });

      it('keeps binary values holding CRLF, *, $, # and NUL byte for byte', () => {
        const value = Buffer.from([
          0x2a, 0x33, 0x0d, 0x0a, 0x24, 0x00, 0xff, 0x0d, 0x0a, 0x23, 0x0d,
        ]);
        const input = encodeCommand(['SET', Buffer.from([0xfe, 0x0a]), value]);
        const { frames } = scan(split(input));
        expect(frames).toHaveLength(1);
        const frame = frames[0]!;
        expect(frame.kind).toBe('command');
        if (frame.kind !== 'command') return;
        expect(frame.bytes.equals(input)).toBe(true);
        expect(frame.args.map((arg) => [...arg])).toEqual([
          [...Buffer.from('SET')],
          [0xfe, 0x0a],
          [...value],
        ]);
      });

      it('accepts empty bulk strings', () => {
        const raw = '*2\r\n$0\r\n\r\n$0\r\n\r\n';
        const { frames } = scan(split(Buffer.from(raw)));
        expect(plain(frames)).toEqual([command(0, raw, ['', ''])]);
      });

      it('yields *0 and *-1, which Redis skips, as commands without args so every byte is in a frame', () => {
        const input = Buffer.from(`*0\r\n*-1\r\n${PING}`);
        const { frames, scanner } = scan(split(input), { startAt: 5 });
        expect(plain(frames)).toEqual([
          command(5, '*0\r\n', []),
          command(9, '*-1\r\n', []),
          command(14, PING, ['ping']),
        ]);
        expect(scanner.position).toBe(5 + input.length);
      });

      it('yields AOF annotations when asked, and a bulk string starting with # stays data', () => {
        const raw = `#TS:1700000000\r\n*2\r\n$3\r\nGET\r\n$2\r\n#x\r\n#TS:1700000001\r\n`;
        const { frames } = scan(split(Buffer.from(raw)), { annotations: true });
        expect(plain(frames)).toEqual([
          {
            kind: 'annotation',
            start: 0,
            length: 16,
            bytes: '#TS:1700000000\r\n',
            text: 'TS:1700000000',
          },
          command(16, '*2\r\n$3\r\nGET\r\n$2\r\n#x\r\n', ['GET', '#x']),
          {
            kind: 'annotation',
            start: 37,
            length: 16,
            bytes: '#TS:1700000001\r\n',
            text: 'TS:1700000001',
          },
        ]);
      });

      it('holds an incomplete frame and reports it as pending, not consumed', () => {
        const input = Buffer.from(PING + SET.slice(0, 20));
        const { frames, scanner } = scan(split(input), { startAt: 100 });
        expect(plain(frames)).toEqual([command(100, PING, ['ping'])]);
        expect(scanner.position).toBe(114);
        expect(scanner.pendingBytes).toBe(20);
      });

      const malformed: Array<[string, string, number, FrameScannerOptions?]> = [
        ['a reply where a command must start', '+OK\r\n', 0],
        ['garbage after a good frame', `${PING}X`, 14],
        ['a bulk string not followed by CRLF', '*2\r\n$3\r\nfoo\r\n$3\r\nbarXY', 20],
        ['an integer where a bulk string must be', '*1\r\n:5\r\n', 4],
        ['a letter in a multibulk length', '*1x\r\n', 2],
        ['CR not followed by LF', '*1\r\r', 3],
        ['a null bulk string in a command', '*1\r\n$-1\r\n', 5],
        ['a length with a leading zero', '*01\r\n', 1],
        ['a negative multibulk length other than -1', '*-2\r\n', 1],
        ['an empty length', '*\r\n', 1],
        ['a length with too many digits', '*1\r\n$1234567890123456\r\n', 20],
        ['a bulk longer than a Buffer can be', '*1\r\n$999999999999999\r\n', 4],
        ['an annotation when annotations are off', '#TS:1\r\n', 0],
        ['an annotation ending in a bare LF', '#TS:1\n', 5, { annotations: true }],
        ['an annotation longer than 1024 bytes', `#${'x'.repeat(1100)}`, 0, { annotations: true }],
      ];
      for (const [what, raw, position, options] of malformed) {
        it(`throws RF_PROTOCOL at byte ${position} for ${what}`, () => {
          const scanner = new FrameScanner({ startAt: 7, ...options });
          const error = protocolErrorOf(() => {
            for (const chunk of split(Buffer.from(raw, 'latin1'))) scanner.push(chunk);
          });
          expect(error.position).toBe(7 + position);
          const frameStart = raw.startsWith(PING) ? 7 + 14 : 7;
          expect(error.frameStart).toBe(frameStart);
          expect(scanner.position).toBe(frameStart);
        });
      }
    });
  }

  it('stays failed after a protocol error', () => {
    const scanner = new FrameScanner();
    expect(() => scanner.push(Buffer.from('-ERR\r\n'))).toThrow(/expected '\*'/);
    expect(() => scanner.push(Buffer.from(PING))).toThrow(/expected '\*'/);
  });

  it('assembles a large value split across many pushes into one frame of exactly its size', () => {
    const payload = Buffer.alloc(5 * 1024 * 1024 + 3);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
    const input = Buffer.concat([
      Buffer.from(PING),
      encodeCommand(['RESTORE', 'big', 0, payload]),
      Buffer.from(PING),
    ]);
    const scanner = new FrameScanner();
    const frames: Frame[] = [];
    let maxPending = 0;
    for (let at = 0; at < input.length; at += 65536) {
      frames.push(...scanner.push(input.subarray(at, at + 65536)));
      maxPending = Math.max(maxPending, scanner.pendingBytes);
    }
    expect(frames.map((f) => f.length)).toEqual([14, input.length - 28, 14]);
    const restore = frames[1]!;
    if (restore.kind !== 'command') throw new Error('expected a command');
    expect(restore.start).toBe(14);
    expect(restore.args[3]!.equals(payload)).toBe(true);
    expect(restore.bytes.equals(input.subarray(14, input.length - 14))).toBe(true);
    // Held bytes never exceed the frame: the scanner does not buffer what follows it.
    expect(maxPending).toBeLessThan(restore.length);
    expect(scanner.pendingBytes).toBe(0);
  });

  it('assembles a frame of many small args arriving in small pushes', () => {
    const args = ['RPUSH', 'list', ...Array.from({ length: 20_000 }, (_, i) => `item-${i}`)];
    const input = encodeCommand(args);
    const { frames } = scan(randomSplit(input, 3, 100));
    expect(frames).toHaveLength(1);
    const frame = frames[0]!;
    if (frame.kind !== 'command') throw new Error('expected a command');
    expect(frame.args.map(String)).toEqual(args);
    expect(frame.length).toBe(input.length);
  });

  it('reproduces a random stream exactly, however it is split', () => {
    const random = prng(42);
    const commands: Buffer[][] = [];
    for (let i = 0; i < 300; i++) {
      const argc = 1 + Math.floor(random() * 5);
      const args: Buffer[] = [];
      for (let j = 0; j < argc; j++) {
        const arg = Buffer.alloc(Math.floor(random() * (random() < 0.1 ? 3000 : 20)));
        for (let k = 0; k < arg.length; k++) arg[k] = Math.floor(random() * 256);
        args.push(arg);
      }
      commands.push(args);
    }
    const input = Buffer.concat(commands.map((args) => encodeCommand(args)));
    for (const seed of [7, 8, 9]) {
      const { frames, scanner } = scan(randomSplit(input, seed, 1 + seed * 300));
      expect(frames).toHaveLength(commands.length);
      expect(Buffer.concat(frames.map((f) => f.bytes)).equals(input)).toBe(true);
      let start = 0;
      frames.forEach((frame, i) => {
        expect(frame.start).toBe(start);
        start += frame.length;
        if (frame.kind !== 'command') throw new Error('expected a command');
        expect(frame.args).toEqual(commands[i]);
      });
      expect(scanner.position).toBe(input.length);
    }
  });

  it('scan hands its sink, one reused object, exactly the frames push returns', () => {
    const random = prng(5);
    const parts: Buffer[] = [];
    for (let i = 0; i < 400; i++) {
      if (random() < 0.05) parts.push(Buffer.from(`#TS:${1_700_000_000 + i}\r\n`));
      const args = [random() < 0.1 ? 'SELECT' : 'SET', `k${i}`];
      if (random() < 0.2) args.push('x'.repeat(Math.floor(random() * 4000)));
      parts.push(encodeCommand(args));
    }
    const input = Buffer.concat(parts);
    for (const seed of [11, 12]) {
      const chunks = randomSplit(input, seed, 1 + seed * 50).map((c) => Buffer.from(c));
      const expected = plain(scan(chunks, { annotations: true, startAt: 9 }).frames);
      const scanner = new FrameScanner({ annotations: true, startAt: 9 });
      const seen: unknown[] = [];
      const objects = new Set<ScannedFrame>();
      for (const chunk of chunks) {
        scanner.scan(chunk, (f) => {
          objects.add(f);
          const bytes = f.bytes().toString('latin1');
          if (f.text !== null) {
            seen.push({
              kind: 'annotation',
              start: f.start,
              length: f.length,
              bytes,
              text: f.text,
            });
            return;
          }
          // The name is where nameStart and nameLength say, without making the args.
          expect(f.buf.toString('latin1', f.nameStart, f.nameStart + f.nameLength)).toBe(
            f.args()[0]?.toString('latin1'),
          );
          const args = f.args().map((a) => a.toString('latin1'));
          seen.push({ kind: 'command', start: f.start, length: f.length, bytes, args });
        });
      }
      expect(seen).toEqual(expected);
      expect(objects.size).toBe(1);
      expect(scanner.position).toBe(9 + input.length);
    }
  });

  it('scan has handed the sink every frame before a protocol error', () => {
    const scanner = new FrameScanner();
    const starts: number[] = [];
    const input = Buffer.from(`${PING}${SET}+OK\r\n`, 'latin1');
    expect(() => scanner.scan(input, (f) => starts.push(f.start))).toThrow(
      expect.objectContaining({ code: 'RF_PROTOCOL' }),
    );
    expect(starts).toEqual([0, PING.length]);
    expect(() => scanner.scan(Buffer.from(PING), () => undefined)).toThrow(
      expect.objectContaining({ code: 'RF_PROTOCOL' }),
    );
  });

  it('returns nothing for an empty push', () => {
    const scanner = new FrameScanner({ startAt: 3 });
    expect(scanner.push(Buffer.alloc(0))).toEqual([]);
    expect(scanner.position).toBe(3);
  });

  it('skips bare newlines between frames with keepalives, and only then', () => {
    const input = Buffer.from(`\n${PING}\n\n${SET}\n`, 'latin1');
    for (const [how, split] of modes) {
      const { frames, scanner } = scan(split(input), { keepalives: true });
      expect(plain(frames), how).toEqual([
        command(1, PING, ['ping']),
        command(3 + PING.length, SET, ['SET', 'key', 'value']),
      ]);
      expect(scanner.position, how).toBe(input.length);
    }
    expect(() => scan([input])).toThrow(expect.objectContaining({ code: 'RF_PROTOCOL' }));
  });

  it('rejects a negative startAt as a misuse', () => {
    expect(() => new FrameScanner({ startAt: -1 })).toThrow(TypeError);
  });
});

describe('commandName', () => {
  it('lower-cases the first argument, as Redis compares command names', () => {
    const { frames } = scan([Buffer.from('*2\r\n$6\r\nSeLeCt\r\n$1\r\n0\r\n')]);
    const frame = frames[0]!;
    if (frame.kind !== 'command') throw new Error('expected a command');
    expect(commandName(frame.bytes)).toBe('select');
  });

  it('is empty for a frame without args', () => {
    const { frames } = scan([Buffer.from('*0\r\n')]);
    const frame = frames[0]!;
    if (frame.kind !== 'command') throw new Error('expected a command');
    expect(commandName(frame.bytes)).toBe('');
  });
});
