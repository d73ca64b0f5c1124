import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAofCapture } from '../../src/aof/index.js';
import { isRfError } from '../../src/errors.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { restore } from '../../src/restore/restore.js';
import { AofArchive } from '../../src/store/chunks.js';
import { Store } from '../../src/store/store.js';
import { quiet } from '../helpers/aof.js';
import { waitFor } from '../helpers/load.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * Incr files that came and went between two looks at the manifest (rewrites faster than the
 * poll), which a real Redis cannot be made to do on demand: the test writes the appendonlydir.
 */
const scope = testScope();

const sets = (tag: string, n: number) =>
  Buffer.concat(Array.from({ length: n }, (_, i) => encodeCommand(['SET', `${tag}${i}`, 'v'])));

async function writeManifest(dir: string, lines: string[]): Promise<void> {
  // Redis renames a new manifest into place (aof.c writeAofManifestFile).
  const tmp = path.join(dir, 'temp-appendonly.aof.manifest');
  await fs.writeFile(tmp, `${lines.join('\n')}\n`);
  await fs.rename(tmp, path.join(dir, 'appendonly.aof.manifest'));
}

describe('incr files missed between two looks at the manifest', () => {
  it('each missed file gets its own gap, and a restore across them is refused', async () => {
    const root = await makeTempDir('rf-aof-missed-');
    scope.defer(() => removeTempDir(root));
    const dir = path.join(root, 'appendonlydir');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'appendonly.aof.1.base.aof'), sets('base', 1));
    await fs.writeFile(path.join(dir, 'appendonly.aof.1.incr.aof'), sets('a', 5));
    const base = 'file appendonly.aof.1.base.aof seq 1 type b';
    await writeManifest(dir, [base, 'file appendonly.aof.1.incr.aof seq 1 type i']);

    const store = await Store.open(await scope.storeDir(), { create: true });
    scope.defer(() => store.close());
    const handle = await startAofCapture({
      store,
      source: 'default',
      aofDir: dir,
      chunkSize: 64,
      lingerMs: 5,
      pollMs: 5,
      log: quiet,
    });
    scope.defer(() => handle.stop());
    const archive = new AofArchive(store);
    await waitFor(
      async () => (await archive.files('default'))[0]?.capturedEnd === sets('a', 5).length,
      'the first incr file stored',
    );

    // Seqs 2 and 3 were created and deleted before the capture looked again.
    await fs.writeFile(path.join(dir, 'appendonly.aof.4.incr.aof'), sets('d', 3));
    await writeManifest(dir, [
      base,
      'file appendonly.aof.1.incr.aof seq 1 type i',
      'file appendonly.aof.4.incr.aof seq 4 type i',
    ]);
    await waitFor(
      async () =>
        (await archive.files('default')).find((f) => f.seq === 4)?.capturedEnd ===
        sets('d', 3).length,
      'the fourth incr file stored',
    );
    await handle.stop();

    const files = await archive.files('default');
    const fourth = files.find((f) => f.seq === 4)!;
    const gaps = await archive.gaps('default');
    expect(gaps.map((g) => g.file).sort()).toEqual([
      'appendonly.aof.2.incr.aof',
      'appendonly.aof.3.incr.aof',
    ]);
    // Filed under numbers of their own, not under the file that came after them.
    const numbers = new Set([...gaps.map((g) => g.fileNo), ...files.map((f) => f.fileNo)]);
    expect(numbers.size).toBe(gaps.length + files.length);
    expect(gaps.every((g) => g.fileNo < fourth.fileNo && g.reason === 'file-deleted')).toBe(true);

    // The history from base 1 misses them: a restore after them is refused, not silently short.
    const refused = await restore({
      open: async () => store,
      name: 'default',
      until: 'latest',
      tz: 'UTC',
      now: Date.now(),
      from: 'aof',
      into: null,
    }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(isRfError(refused, 'RF_TIME_IN_GAP')).toBe(true);
  });
});
