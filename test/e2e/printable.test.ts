import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalSink } from '../../src/aof/sink.js';
import { printable } from '../../src/cli/output.js';
import { Store } from '../../src/store/store.js';
import { aofFileRecord } from '../helpers/aof-records.js';
import { rf } from '../helpers/rf.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * What rf prints may carry what it received. A record stored before its fields were checked (or
 * any name from the wire) must reach the terminal as text, never as the escape sequence it holds.
 */

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await removeTempDir(d);
});

const hostile = '\u001b]0;owned\u0007\u001b[2J\rforged';

describe('rf prints received text, not terminal controls', () => {
  it('escapes control characters, leaving newlines, tabs and other text as they are', () => {
    expect(printable(`a\tb\nc ${hostile} é \u009b`)).toBe(
      'a\tb\nc \\x1b]0;owned\\x07\\x1b[2J\\x0dforged é \\x9b',
    );
  });

  it('rf info and rf verify show a stored AOF gap with escapes in its file name as text', async () => {
    const dir = await makeTempDir('rf-printable-');
    dirs.push(dir);
    const storeDir = path.join(dir, 'store');
    const store = await Store.open(storeDir, { create: true });
    const sink = new LocalSink(store, 'cache', 'aof-ship://test');
    await sink.putFile(aofFileRecord(1, { name: hostile, ino: 1 }));
    await sink.putGap({
      fileNo: 1,
      file: hostile,
      start: 0,
      end: 10,
      at: Date.now(),
      reason: 'torn-tail',
    });
    await store.close();
    for (const command of ['info', 'verify']) {
      const res = await rf([command, '--store', storeDir, '--name', 'cache']);
      const printed = res.stdout + res.stderr;
      expect(printed, command).toContain('\\x1b]0;owned');
      // biome-ignore lint/suspicious/noControlCharactersInRegex: what must not be printed
      expect(printed).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    }
  });
});
