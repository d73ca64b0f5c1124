import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isRfError, RfError } from '../../src/errors.js';
import { writeRestoreDir } from '../../src/restore/write-dir.js';
import { diskError } from '../../src/store/store.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * A disk that refuses a write must reach the operator as RF_STORE_UNWRITABLE naming the cause,
 * not as an internal error. The shapes below are the ones LevelDB (through classic-level) and
 * Node's fs give; `rf listen` on a full 12 MiB tmpfs printed the LevelDB one.
 */
describe('diskError', () => {
  const store = '/var/lib/rf';

  it('names a full disk behind a LevelDB IO error, with what to do', () => {
    const leveldb = Object.assign(
      new Error('IO error: /var/lib/rf/db/000003.log: No space left on device'),
      { code: 'LEVEL_IO_ERROR' },
    );
    const wrapped = new Error('batch failed', { cause: leveldb });
    const err = diskError(store, wrapped);
    expect(isRfError(err, 'RF_STORE_UNWRITABLE')).toBe(true);
    const rf = err as RfError;
    expect(rf.message).toContain('the disk is full');
    expect(rf.message).toContain('000003.log');
    expect(rf.details).toEqual({ store, errno: 'ENOSPC' });
    expect(rf.hint).toMatch(/free space/);
    expect(rf.exitCode).toBe(3);
  });

  it('names the file and the errno of an fs write that failed', () => {
    const fsError = Object.assign(new Error('EDQUOT: disk quota exceeded, write'), {
      code: 'EDQUOT',
      syscall: 'write',
    });
    const err = diskError(store, fsError, '/var/lib/rf/tmp/base-1.tmp') as RfError;
    expect(err.code).toBe('RF_STORE_UNWRITABLE');
    expect(err.details).toEqual({ store, errno: 'EDQUOT', file: '/var/lib/rf/tmp/base-1.tmp' });
    const readOnly = Object.assign(new Error('EROFS: read-only file system, open'), {
      code: 'EROFS',
    });
    expect((diskError(store, readOnly) as RfError).message).toContain('read-only');
  });

  it('reports any other LevelDB IO error as the store being unwritable', () => {
    const other = Object.assign(new Error('IO error: /var/lib/rf/db/MANIFEST-000002: odd'), {
      code: 'LEVEL_IO_ERROR',
    });
    const err = diskError(store, other) as RfError;
    expect(err.code).toBe('RF_STORE_UNWRITABLE');
    expect(err.message).toContain('the disk refused a write');
  });

  it('leaves errors that are not the disk alone', () => {
    const bug = new TypeError('x is not a function');
    expect(diskError(store, bug)).toBe(bug);
    const typed = new RfError('RF_CHECKSUM', 'bad');
    expect(diskError(store, typed)).toBe(typed);
    const notOpen = Object.assign(new Error('Database is not open'), {
      code: 'LEVEL_DATABASE_NOT_OPEN',
    });
    expect(diskError(store, notOpen)).toBe(notOpen);
  });
});

describe('writeRestoreDir on a disk that fills up', () => {
  it('leaves nothing behind and says RF_OUT_UNWRITABLE, exit 3', async () => {
    const parent = await makeTempDir('rf-out-');
    try {
      const out = path.join(parent, 'out');
      async function* incr() {
        yield Buffer.from('*1\r\n$4\r\nPING\r\n');
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), {
          code: 'ENOSPC',
        });
      }
      const err = await writeRestoreDir(out, null, incr()).catch((e: unknown) => e);
      expect(isRfError(err, 'RF_OUT_UNWRITABLE')).toBe(true);
      expect((err as RfError).details).toEqual({ out, errno: 'ENOSPC' });
      expect((err as RfError).exitCode).toBe(3);
      expect(await readdir(parent)).toEqual([]);
    } finally {
      await removeTempDir(parent);
    }
  });
});
