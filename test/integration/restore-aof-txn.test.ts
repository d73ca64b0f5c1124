import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAofCapture } from '../../src/aof/index.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { restore } from '../../src/restore/restore.js';
import { AofArchive } from '../../src/store/chunks.js';
import { Store } from '../../src/store/store.js';
import { quiet } from '../helpers/aof.js';
import { waitFor } from '../helpers/load.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * Transactions at the end of the AOF record. Redis writes MULTI … EXEC in one flush of the AOF
 * buffer (aof.c flushAppendOnlyFile), so an AOF that stops inside one is written by the test: a
 * Redis 7 appendonlydir whose incr file ends after MULTI and one queued write.
 */
const scope = testScope();

async function archiveOf(incr: Buffer[]): Promise<Store> {
  const aofDir = await makeTempDir('rf-aof-txn-');
  scope.defer(() => removeTempDir(aofDir));
  const dir = path.join(aofDir, 'appendonlydir');
  await fs.mkdir(dir);
  await fs.writeFile(
    path.join(dir, 'appendonly.aof.1.base.aof'),
    encodeCommand(['SET', 'base', '0']),
  );
  await fs.writeFile(path.join(dir, 'appendonly.aof.1.incr.aof'), Buffer.concat(incr));
  await fs.writeFile(
    path.join(dir, 'appendonly.aof.manifest'),
    'file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n',
  );
  const storeDir = await scope.storeDir();
  const store = await Store.open(storeDir, { create: true });
  // restore() closes the store it opened; this closes it when a test stops before that.
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
  const size = Buffer.concat(incr).length;
  await waitFor(async () => {
    const files = await new AofArchive(store).files('default');
    return files[0]?.capturedEnd === size;
  }, 'the incr file stored');
  await handle.stop();
  return store;
}

/** `rf restore --from aof --until latest --dry-run`, through the entry point the CLI calls. */
const dryRun = (store: Store) =>
  restore({
    open: async () => store,
    name: 'default',
    until: 'latest',
    tz: 'UTC',
    now: Date.now(),
    from: 'aof',
    into: null,
  });

describe('an AOF restore never splits a transaction', () => {
  it('reports a transaction open at the end of the AOF record, as the stream restore does', async () => {
    const store = await archiveOf([
      encodeCommand(['SET', 'a', '1']),
      encodeCommand(['MULTI']),
      encodeCommand(['SET', 'b', '2']),
    ]);
    const result = await dryRun(store);
    expect(result.from).toBe('aof');
    expect(result.dropped).toMatchObject({ reason: 'open-at-archive-end', commands: 1 });
    expect(result.lastWrite?.command).toBe('set');
    expect(result.replay.writes).toBe(1);
  });

  it('applies a committed transaction whole and counts its writes, SELECT not among them', async () => {
    const store = await archiveOf([
      encodeCommand(['SET', 'a', '1']),
      encodeCommand(['MULTI']),
      encodeCommand(['SELECT', '1']),
      encodeCommand(['SET', 'b', '2']),
      encodeCommand(['EXEC']),
    ]);
    const result = await dryRun(store);
    expect(result.dropped).toBeNull();
    expect(result.lastWrite?.command).toBe('exec');
    expect(result.replay.writes).toBe(2);
  });
});
