import { promises as fs } from 'node:fs';
import path from 'node:path';
import { diskFailure, errnoCode, RfError } from '../errors.js';
import type { OutLayout } from './layout.js';

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
 * Writes a directory that `redis-server --dir DIR --appendonly yes` boots from as it is: for
 * `redis7` a multi-part AOF directory (base, one incr file, manifest), for `redis6` a single
 * `appendonly.aof` (the base, then the commands). Everything is written in a hidden staging
 * directory and renamed into place at the end, so a failure leaves no half restore.
 */
export async function writeRestoreDir(
  dir: string,
  base: { format: 'rdb' | 'aof'; chunks: AsyncIterable<Buffer> } | null,
  incr: AsyncIterable<Buffer>,
  layout: OutLayout = 'redis7',
): Promise<{ dir: string; baseBytes: number; incrBytes: number }> {
  await checkOutDir(dir);
  const created = !(await fs.access(dir).then(
    () => true,
    () => false,
  ));
  await fs.mkdir(dir, { recursive: true });
  const staging = path.join(dir, `.rf-restore-${process.pid}`);
  try {
    await fs.mkdir(staging, { recursive: true });
    const written =
      layout === 'redis7'
        ? await writeMultiPart(staging, base, incr)
        : await writeSingle(staging, base, incr);
    await fs.rename(path.join(staging, written.name), path.join(dir, written.name));
    await fs.rmdir(staging);
    return { dir, baseBytes: written.baseBytes, incrBytes: written.incrBytes };
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

type Written = { name: string; baseBytes: number; incrBytes: number };

async function writeMultiPart(
  staging: string,
  base: { format: 'rdb' | 'aof'; chunks: AsyncIterable<Buffer> } | null,
  incr: AsyncIterable<Buffer>,
): Promise<Written> {
  const aofDir = path.join(staging, AOF_DIR);
  await fs.mkdir(aofDir);
  // A base is RDB (the stream's snapshots, AOF bases with the RDB preamble) or AOF commands.
  const baseName = base === null ? null : `${AOF_NAME}.1.base.${base.format}`;
  const baseBytes =
    base === null || baseName === null
      ? 0
      : await writeAll(path.join(aofDir, baseName), base.chunks);
  const incrBytes = await writeAll(path.join(aofDir, INCR), incr);
  const manifest = `${baseName === null ? '' : `file ${baseName} seq 1 type b\n`}file ${INCR} seq 1 type i\n`;
  await writeAll(path.join(aofDir, MANIFEST), once(Buffer.from(manifest)));
  return { name: AOF_DIR, baseBytes, incrBytes };
}

/** Redis 6: one file, the base (an RDB preamble, or commands) and then the writes. */
async function writeSingle(
  staging: string,
  base: { format: 'rdb' | 'aof'; chunks: AsyncIterable<Buffer> } | null,
  incr: AsyncIterable<Buffer>,
): Promise<Written> {
  const counted = { base: 0, incr: 0 };
  async function* parts(): AsyncIterable<Buffer> {
    if (base !== null) {
      for await (const c of base.chunks) {
        counted.base += c.length;
        yield c;
      }
    }
    for await (const c of incr) {
      counted.incr += c.length;
      yield c;
    }
  }
  await writeAll(path.join(staging, AOF_NAME), parts());
  return { name: AOF_NAME, baseBytes: counted.base, incrBytes: counted.incr };
}

async function* once(buf: Buffer): AsyncIterable<Buffer> {
  yield buf;
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
