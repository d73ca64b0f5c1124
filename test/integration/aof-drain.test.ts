import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { AofCapture } from '../../src/aof/capture.js';
import { LocalSink } from '../../src/aof/sink.js';
import { encodeCommand } from '../../src/resp/encode.js';
import type { AofFileRecord } from '../../src/store/chunks.js';
import { Store } from '../../src/store/store.js';
import { quiet } from '../helpers/aof.js';
import { waitFor } from '../helpers/load.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * The rewrite cycle calls drain() while the capture loop may be finishing a file. The loop owns
 * the file handles: a drain must not use one the loop is closing.
 */
const scope = testScope();

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('AofCapture.drain', () => {
  it('waits for a file being finished instead of reading its closing handle', async () => {
    const aofDir = await makeTempDir('rf-aof-drain-');
    scope.defer(() => removeTempDir(aofDir));
    const file = path.join(aofDir, 'appendonly.aof');
    const bytes = Buffer.concat([
      encodeCommand(['SET', 'a', '1']),
      encodeCommand(['SET', 'b', '2']),
    ]);
    await fs.writeFile(file, bytes);
    const store = await Store.open(await scope.storeDir(), { create: true });
    scope.defer(() => store.close());

    // Holds the close of the file being finished until the drain has been asked for.
    const closing = deferred();
    const release = deferred();
    let armed = false;
    const realOpen = fs.open.bind(fs);
    const spy = vi.spyOn(fs, 'open').mockImplementation(async (...args) => {
      const fh = await realOpen(...args);
      const realClose = fh.close.bind(fh);
      fh.close = async () => {
        const closed = realClose();
        if (armed) {
          armed = false;
          closing.resolve();
          await release.promise;
        }
        return closed;
      };
      return fh;
    });
    scope.defer(async () => spy.mockRestore());

    const local = new LocalSink(store, 'default', 'test');
    const sink = Object.assign(Object.create(local) as LocalSink, {
      putFile: async (record: AofFileRecord) => {
        const stored = await local.putFile(record);
        // The next close the loop makes is the one of the file it has just marked ended.
        if (record.ended !== null) armed = true;
        return stored;
      },
    });
    const capture = new AofCapture({
      aofDir,
      sink,
      chunkSize: 1024,
      chunkPauseMs: 0,
      pollMs: 5,
      lingerMs: 5,
      log: quiet,
    });
    await capture.start();
    scope.defer(() => capture.stop());
    await waitFor(
      async () => capture.status().current?.position === bytes.length,
      'the file stored',
    );

    // Redis 6 with appendonly turned off: the file goes, and the capture finishes it.
    await fs.rm(file);
    await closing.promise;
    const drained = capture.drain();
    release.resolve();
    await expect(drained).resolves.toBeUndefined();
    expect(capture.status().current).toBeNull();
  });
});
