import { describe, expect, it } from 'vitest';
import { encodeCommand, encodeCommands } from '../../src/resp/encode.js';
import { FrameScanner } from '../../src/resp/frames.js';

describe('encodeCommand', () => {
  it('writes a multibulk of bulk strings', () => {
    expect(encodeCommand(['SET', 'key', 'value']).toString('latin1')).toBe(
      '*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n',
    );
  });

  it('counts UTF-8 bytes, not characters', () => {
    expect(encodeCommand(['SET', 'clé', '€']).toString('latin1')).toBe(
      Buffer.from('*3\r\n$3\r\nSET\r\n$4\r\nclé\r\n$3\r\n€\r\n').toString('latin1'),
    );
  });

  it('copies binary Buffers byte for byte, CRLF and NUL included', () => {
    const value = Buffer.from([0x00, 0x0d, 0x0a, 0x2a, 0x24, 0xff, 0x80]);
    const expected = Buffer.concat([
      Buffer.from('*2\r\n$4\r\nECHO\r\n$7\r\n'),
      value,
      Buffer.from('\r\n'),
    ]);
    expect(encodeCommand(['ECHO', value]).equals(expected)).toBe(true);
  });

  it('sends numbers as decimal text', () => {
    expect(encodeCommand(['EXPIRE', 'k', 100, -1, 1.5]).toString()).toBe(
      '*5\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$3\r\n100\r\n$2\r\n-1\r\n$3\r\n1.5\r\n',
    );
  });

  it('encodes empty strings and an empty command', () => {
    expect(encodeCommand(['GET', '']).toString()).toBe('*2\r\n$3\r\nGET\r\n$0\r\n\r\n');
    expect(encodeCommand([]).toString()).toBe('*0\r\n');
  });

  it('gets multi-digit lengths right at the powers of ten', () => {
    for (const length of [9, 10, 99, 100, 999, 1000, 100_000]) {
      const encoded = encodeCommand([Buffer.alloc(length, 0x61)]);
      expect(encoded.subarray(0, 4 + String(length).length + 3).toString()).toBe(
        `*1\r\n$${length}\r\n`,
      );
      expect(encoded.length).toBe(4 + String(length).length + 3 + length + 2);
    }
  });

  it('round-trips through the frame scanner', () => {
    const args = [
      Buffer.from('HSET'),
      Buffer.from('h'),
      Buffer.from([1, 2, 13, 10, 3]),
      Buffer.alloc(70_000, 0xee),
    ];
    const [frame] = new FrameScanner().push(encodeCommand(args));
    if (frame?.kind !== 'command') throw new Error('expected one command frame');
    expect(frame.args.length).toBe(args.length);
    expect(frame.args.map((arg, i) => arg.equals(args[i]!))).toEqual([true, true, true, true]);
  });

  it('rejects values Redis cannot parse as a misuse', () => {
    expect(() => encodeCommand(['SET', 'k', Number.NaN])).toThrow(TypeError);
    expect(() => encodeCommand(['SET', 'k', Number.POSITIVE_INFINITY])).toThrow(TypeError);
    expect(() => encodeCommand(['SET', 'k', null as unknown as string])).toThrow(TypeError);
  });

  it('encodes a pipeline back to back in one buffer, as each command alone', () => {
    const commands = [['SET', 'k', Buffer.from([0, 13, 10])], [], ['RESTORE', 'clé', 12_345, '']];
    expect(encodeCommands(commands).toString('latin1')).toBe(
      Buffer.from(
        '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\x00\r\n\r\n*0\r\n*4\r\n$7\r\nRESTORE\r\n$4\r\nclé\r\n$5\r\n12345\r\n$0\r\n\r\n',
      ).toString('latin1'),
    );
    expect(encodeCommands([]).length).toBe(0);
  });

  it('copies a command encoded already as it is, between commands given as arguments', () => {
    const encoded = encodeCommand(['RESTORE', Buffer.from([0xff, 13]), '0', Buffer.alloc(70, 1)]);
    expect(encodeCommands([['PING'], encoded, ['EXISTS', 'k']])).toEqual(
      Buffer.concat([encodeCommand(['PING']), encoded, encodeCommand(['EXISTS', 'k'])]),
    );
  });
});
