import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { errnoCode, isRfError } from '../errors.js';
import { RdbChecker } from '../rdb/check.js';

export interface FileCheck {
  /** 'missing' when the file is not there at all. */
  kind: 'ok' | 'missing' | 'unreadable';
  bytes: number;
  sha256: string;
  /** Why the RDB check failed (magic, version, truncation, CRC64), or null when it passed or was not asked for. */
  rdbError: string | null;
  errno?: string;
}

/**
 * Reads a stored file once, computing its sha256 and, with `rdb`, the RDB integrity check
 * (header, EOF opcode, CRC64) in the same pass: a 10 GB base is read once, in 1 MiB pieces.
 */
export async function checkStoredFile(
  file: string,
  options: { rdb: boolean; onBytes?: (n: number) => void; onData?: (piece: Buffer) => void },
): Promise<FileCheck> {
  const hash = createHash('sha256');
  const rdb = options.rdb ? new RdbChecker(file) : null;
  let rdbError: string | null = null;
  let bytes = 0;
  try {
    for await (const piece of createReadStream(file, { highWaterMark: 1 << 20 })) {
      const buf = piece as Buffer;
      hash.update(buf);
      bytes += buf.length;
      options.onBytes?.(buf.length);
      options.onData?.(buf);
      if (rdb !== null && rdbError === null) {
        try {
          rdb.update(buf);
        } catch (err) {
          rdbError = rdbMessage(err);
        }
      }
    }
  } catch (err) {
    const errno = errnoCode(err);
    return {
      kind: errno === 'ENOENT' ? 'missing' : 'unreadable',
      bytes,
      sha256: '',
      rdbError,
      ...(errno === undefined ? {} : { errno }),
    };
  }
  if (rdb !== null && rdbError === null) {
    try {
      rdb.finish();
    } catch (err) {
      rdbError = rdbMessage(err);
    }
  }
  return { kind: 'ok', bytes, sha256: hash.digest('hex'), rdbError };
}

function rdbMessage(err: unknown): string {
  if (isRfError(err)) return err.message;
  throw err;
}
