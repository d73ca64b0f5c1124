import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAofCapture } from '../../src/aof/index.js';
import { isRfError } from '../../src/errors.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { AofArchive } from '../../src/store/chunks.js';
import { Store } from '../../src/store/store.js';
import { quiet, sleep, storedFiles } from '../helpers/aof.js';
import { waitFor } from '../helpers/load.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * What a real Redis does rarely and cannot be made to do on demand (a short write it truncates,
 * a torn tail left behind), played on a Redis 6 style appendonly.aof the test writes itself.
 */
const cmds = (from: number, to: number) =>
  Buffer.concat(
    Array.from({ length: to - from }, (_, i) =>
      encodeCommand(['SET', `k${from + i}`, `value-${from + i}`]),
    ),
  );

const scope = testScope();

async function setup(initial: Buffer) {
  const aofDir = await makeTempDir();
  const storeDir = await makeTempDir();
  const store = await Store.open(storeDir, { create: true });
  const file = path.join(aofDir, 'appendonly.aof');
  await fs.writeFile(file, initial);
  const handle = await startAofCapture({
    store,
    source: 's',
    aofDir,
    chunkSize: 256,
    lingerMs: 5,
    pollMs: 5,
    log: quiet,
  });
  scope.defer(async () => {
    await handle.stop();
    await store.close();
    await removeTempDir(storeDir);
    await removeTempDir(aofDir);
  });
  const stored = async () => (await storedFiles(store, 's'))[0]?.bytes ?? Buffer.alloc(0);
  return { file, store, handle, stored };
}

describe('AOF tailer edge cases', () => {
  it('does not ship again the bytes Redis truncates after a short write and writes back unchanged', async () => {
    const first = cmds(0, 40);
    const { file, store, handle, stored } = await setup(first);
    await waitFor(
      async () => (await stored()).length === first.length,
      'the first commands stored',
    );
    const chunksBefore = handle.status().chunks;

    // aof.c flushAppendOnlyFile: a short write is ftruncated back to where it began…
    const cutAt = first.length - cmds(35, 40).length;
    await fs.truncate(file, cutAt);
    await sleep(60);
    // …and the same buffer is written again later, with more behind it.
    const more = cmds(40, 60);
    await fs.appendFile(file, Buffer.concat([cmds(35, 40), more]));
    await waitFor(
      async () => (await stored()).length === first.length + more.length,
      'the new commands stored',
    );

    expect((await stored()).equals(Buffer.concat([first, more]))).toBe(true);
    // Only the new bytes went out: the chunks sent after the truncation hold exactly `more`.
    const files = await storedFiles(store, 's');
    const after = files[0]!.chunks.slice(chunksBefore);
    expect(after.reduce((n, c) => n + (c.end - c.start), 0)).toBe(more.length);
    expect(handle.status().duplicates).toBe(0);
  });

  it('stops with RF_AOF_DIVERGED and records a gap when other bytes come back where Redis truncated', async () => {
    const first = cmds(0, 40);
    const { file, store, handle, stored } = await setup(first);
    await waitFor(
      async () => (await stored()).length === first.length,
      'the first commands stored',
    );
    const cutAt = first.length - cmds(35, 40).length;
    await fs.truncate(file, cutAt);
    await sleep(30);
    await fs.appendFile(file, cmds(100, 105));
    const failure = await handle.done.then(
      () => null,
      (err: unknown) => err,
    );
    expect(isRfError(failure, 'RF_AOF_DIVERGED')).toBe(true);
    expect((failure as { hint?: string }).hint).toMatch(/rf verify/);
    const gaps = await new AofArchive(store).gaps('s');
    expect(gaps).toEqual([
      expect.objectContaining({ reason: 'diverged', start: cutAt, end: first.length }),
    ]);
    // Nothing of the other bytes was stored.
    expect((await stored()).equals(first)).toBe(true);
  });

  it('records a torn tail Redis leaves in a file it moved on from, and ships none of it', async () => {
    const first = cmds(0, 10);
    const torn = encodeCommand(['SET', 'half', 'written']).subarray(0, 12);
    const { file, store, handle, stored } = await setup(Buffer.concat([first, torn]));
    await waitFor(
      async () => (await stored()).length === first.length,
      'the whole commands stored',
    );
    // The rewrite renames a new file over the old one, which keeps its torn tail for ever.
    const next = cmds(10, 20);
    await fs.writeFile(`${file}.tmp`, next);
    await fs.rename(`${file}.tmp`, file);
    await waitFor(
      async () => (await storedFiles(store, 's')).length === 2,
      'the new file followed',
    );
    await handle.capture.drain();
    const [old, current] = await storedFiles(store, 's');
    expect(old!.bytes.equals(first)).toBe(true);
    expect(old!.record.ended?.size).toBe(first.length);
    expect(current!.bytes.equals(next)).toBe(true);
    const gaps = await new AofArchive(store).gaps('s');
    expect(gaps).toEqual([
      expect.objectContaining({
        reason: 'torn-tail',
        fileNo: old!.record.fileNo,
        start: first.length,
        end: first.length + torn.length,
      }),
    ]);
  });
});
