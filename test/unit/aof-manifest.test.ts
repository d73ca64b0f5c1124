import { describe, expect, it } from 'vitest';
import { parseManifest, splitArgs } from '../../src/aof/manifest.js';
import { isRfError } from '../../src/errors.js';

const parse = (text: string) => parseManifest(Buffer.from(text, 'latin1'), 'test.manifest');

function refusal(text: string): { reason: string; line: number } {
  try {
    parse(text);
  } catch (err) {
    if (!isRfError(err, 'RF_AOF_MANIFEST')) throw err;
    return { reason: err.message.replace(/^.*malformed: /, ''), line: err.details.line as number };
  }
  throw new Error(`accepted: ${JSON.stringify(text)}`);
}

describe('parseManifest', () => {
  it('reads what Redis 7 writes: base first, then history, then incr files in seq order', () => {
    const m = parse(
      [
        'file appendonly.aof.2.base.rdb seq 2 type b',
        'file appendonly.aof.1.incr.aof seq 1 type h',
        'file appendonly.aof.2.incr.aof seq 2 type i',
        'file appendonly.aof.3.incr.aof seq 3 type i',
        '',
      ].join('\n'),
    );
    expect(m.base).toEqual({ name: 'appendonly.aof.2.base.rdb', seq: 2, type: 'b' });
    expect(m.history).toEqual([{ name: 'appendonly.aof.1.incr.aof', seq: 1, type: 'h' }]);
    expect(m.incrs.map((e) => e.seq)).toEqual([2, 3]);
  });

  it('accepts comments, any key order and case, unknown keys, and a manifest without a base', () => {
    const m = parse('# written by a test\nSEQ 7 TYPE i FILE x.7.incr.aof future yes\n');
    expect(m.base).toBeNull();
    expect(m.incrs).toEqual([{ name: 'x.7.incr.aof', seq: 7, type: 'i' }]);
  });

  it('reads names quoted the way sdscatrepr writes them', () => {
    const m = parse(
      "file \"my aof\\x41.1.incr.aof\" seq 1 type i\nfile 'it\\'s.base.rdb' seq 1 type b\n",
    );
    expect(m.incrs[0]?.name).toBe('my aofA.1.incr.aof');
    expect(m.base?.name).toBe("it's.base.rdb");
  });

  it.each([
    ['', 'Found an empty AOF manifest', 0],
    ['file a seq 1 type i\n\nfile b seq 2 type i\n', 'Invalid AOF manifest file format', 2],
    ['file a seq 1\n', 'Invalid AOF manifest file format', 1],
    ['file a seq 1 type i extra\n', 'Invalid AOF manifest file format', 1],
    ['file a seq 0 type i\n', 'Invalid AOF manifest file format', 1],
    [
      'file a.rdb seq 1 type b\nfile b.rdb seq 2 type b\n',
      'Found duplicate base file information',
      2,
    ],
    ['file a seq 2 type i\nfile b seq 2 type i\n', 'Found a non-monotonic sequence number', 2],
    ['file a seq 1 type x\n', 'Unknown AOF file type', 1],
    ['file dir/a seq 1 type i\n', "File can't be a path, just a filename", 1],
    ['file "a seq 1 type i\n', 'Invalid AOF manifest file format', 1],
    ['file "a"b seq 1 type i\n', 'Invalid AOF manifest file format', 1],
    ['file a seq 1 type i', 'The AOF manifest file contains too long line', 1],
    [`file ${'a'.repeat(1100)} seq 1 type i\n`, 'The AOF manifest file contains too long line', 1],
  ])('refuses %j as Redis does: %s', (text, reason, line) => {
    expect(refusal(text)).toEqual({ reason, line });
  });

  it('names the manifest, the line and the next step in its error', () => {
    try {
      parse('file a seq 1 type q\n');
      expect.unreachable();
    } catch (err) {
      expect(isRfError(err, 'RF_AOF_MANIFEST')).toBe(true);
      if (!isRfError(err)) return;
      expect(err.exitCode).toBe(4);
      expect(err.details).toMatchObject({
        manifest: 'test.manifest',
        line: 1,
        text: 'file a seq 1 type q',
      });
      expect(err.hint).toContain('redis-check-aof');
    }
  });
});

describe('splitArgs (sds.c sdssplitargs)', () => {
  const words = (s: string) =>
    splitArgs(Buffer.from(s, 'latin1'))?.map((b) => b.toString('latin1')) ?? null;

  it('splits on runs of white space and keeps quoted spaces', () => {
    expect(words('  a \t b  "c d"  ')).toEqual(['a', 'b', 'c d']);
  });

  it("decodes the escapes of double quotes and only \\' in single quotes", () => {
    expect(words('"\\n\\r\\t\\b\\a\\x7a\\q"')).toEqual(['\n\r\t\b\x07zq']);
    expect(words("'a\\'b\\n'")).toEqual(["a'b\\n"]);
  });

  it('returns null for unbalanced quotes and for text right after a closing quote', () => {
    expect(words('"abc')).toBeNull();
    expect(words("'abc")).toBeNull();
    expect(words('"a"b')).toBeNull();
  });
});
