import { describe, expect, it } from 'vitest';
import { formatCommand, quoteArg } from '../../src/resp/format.js';

/** rf log quotes arguments the way redis-cli shows them (sds.c sdscatrepr). */
describe('quoteArg', () => {
  it('shows printable ASCII as it is', () => {
    expect(quoteArg(Buffer.from('key:000042 with spaces'))).toBe('"key:000042 with spaces"');
    expect(quoteArg(Buffer.alloc(0))).toBe('""');
  });

  it('escapes what sdscatrepr escapes, and every other byte as \\xHH', () => {
    expect(quoteArg(Buffer.from('a\\b"c\n\r\t\x07\x08'))).toBe('"a\\\\b\\"c\\n\\r\\t\\a\\b"');
    expect(quoteArg(Buffer.from([0x00, 0x7f, 0xff, 0x41]))).toBe('"\\x00\\x7f\\xffA"');
    expect(quoteArg(Buffer.from('é'))).toBe('"\\xc3\\xa9"');
  });

  it('cuts a long argument at maxBytes and says how much is left, plain or escaped', () => {
    expect(quoteArg(Buffer.from('abcdefgh'), 3)).toBe('"abc"…(+5 bytes)');
    expect(quoteArg(Buffer.from('a\nbcdefg'), 3)).toBe('"a\\nb"…(+5 bytes)');
    expect(quoteArg(Buffer.from('abc'), 3)).toBe('"abc"');
  });

  it('reads a slice of a larger buffer, not the buffer around it', () => {
    const big = Buffer.from('xxhelloxx');
    expect(quoteArg(big.subarray(2, 7))).toBe('"hello"');
  });
});

describe('formatCommand', () => {
  it('upper-cases the name and quotes each argument', () => {
    expect(formatCommand([Buffer.from('set'), Buffer.from('k'), Buffer.from('v\n')])).toBe(
      'SET "k" "v\\n"',
    );
  });
});
