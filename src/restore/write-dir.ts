import { promises as fs } from 'node:fs';
import path from 'node:path';
import { diskFailure, errnoCode, RfError } from '../errors.js';

/** Redis 7's defaults (appenddirname, appendfilename): what `redis-server --appendonly yes` looks for. */
export const AOF_DIR = 'appendonlydir';
export const AOF_NAME = 'appendonly.aof';
const INCR = `${AOF_NAME}.1.incr.aof`;
const MANIFEST = `${AOF_NAME}.manifest`;

/** Refuses an --out that holds anything: a restore never mixes with or overwrites other files. */
export async function checkOutDir(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw new RfError(
      'RF_OUT_DIR_NOT_EMPTY',
      `cannot use ${dir} as the restore directory: ${(err as Error).message}`,
      {
        details: { out: dir, errno: errnoCode(err) },
        hint: 'pass --out with a new or empty directory',
        cause: err,
      },
    );
  }
  if (names.length > 0) {
    throw new RfError('RF_OUT_DIR_NOT_EMPTY', `the restore directory ${dir} is not empty`, {
      details: { out: dir, entries: names.slice(0, 5) },
      hint: 'pass --out with a new or empty directory; rf never overwrites files',
    });
  }
}

/**
 * Writes a Redis 7 multi-part AOF directory (base RDB, one incr file, manifest) that
 * `redis-server --dir DIR --appendonly yes` boots from as it is. Everything is written in a
 * hidden staging directory and renamed into place at the end, so a failure leaves no half restore.
 */
export async function writeRestoreDir(
  dir: string,
  base: { format: 'rdb' | 'aof'; chunks: AsyncIterable<Buffer> } | null,
  incr: AsyncIterable<Buffer>,
): Promise<{ dir: string; baseBytes: number; incrBytes: number }> {
  await checkOutDir(dir);
  const created = !(await fs.access(dir).then(
    () => true,
    () => false,
  ));
  await fs.mkdir(dir, { recursive: true });
  const staging = path.join(dir, `.rf-restore-${process.pid}`);
  const aofDir = path.join(staging, AOF_DIR);
  try {
    await fs.mkdir(aofDir, { recursive: true });
    // A base is RDB (the stream's snapshots, AOF bases with the RDB preamble) or AOF commands.
    const baseName = base === null ? null : `${AOF_NAME}.1.base.${base.format}`;
    const baseBytes =
      base === null || baseName === null
        ? 0
        : await writeAll(path.join(aofDir, baseName), base.chunks);
    const incrBytes = await writeAll(path.join(aofDir, INCR), incr);
    const manifest = `${baseName === null ? '' : `file ${baseName} seq 1 type b\n`}file ${INCR} seq 1 type i\n`;
    await writeAll(
      path.join(aofDir, MANIFEST),
      (async function* () {
        yield Buffer.from(manifest);
      })(),
    );
    await fs.rename(aofDir, path.join(dir, AOF_DIR));
    await fs.rmdir(staging);
    return { dir, baseBytes, incrBytes };
  } catch (err) {
    await fs.rm(staging, { recursive: true, force: true });
    if (created) await fs.rmdir(dir).catch(() => undefined);
    const failure = diskFailure(err);
    if (failure === undefined) throw err;
    throw new RfError(
      'RF_OUT_UNWRITABLE',
      `cannot write the restore into ${dir}: ${failure.why} (${failure.text})`,
      {
        details: { out: dir, errno: failure.code },
        hint: `nothing was left in ${dir}; free space there or pass another --out`,
        cause: err,
      },
    );
  }
}

async function writeAll(file: string, chunks: AsyncIterable<Buffer>): Promise<number> {
  const fh = await fs.open(file, 'wx', 0o600);
  let n = 0;
  try {
    for await (const c of chunks) {
      await fh.write(c);
      n += c.length;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return n;
}
