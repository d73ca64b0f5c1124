import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { RfError } from '../errors.js';
import type { BaseBody } from '../store/chunks.js';
import type { Pacer } from './pacer.js';

/** Reads exactly `length` bytes at `position`, or null when the file is shorter. */
export async function readExactly(
  fh: FileHandle,
  position: number,
  length: number,
): Promise<Buffer | null> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) return null;
    got += bytesRead;
  }
  return buf;
}

/**
 * The first `bytes` of a file as a stream of pieces of at most `pieceSize`, each read only after
 * the pacer allows it, so a base copy spreads its disk and network load like chunks do. The
 * checksum resolves once the last piece is read (it travels after the bytes, as a trailer).
 */
export function pacedBody(
  fh: FileHandle,
  bytes: number,
  pieceSize: number,
  pacer: Pacer,
  where: string,
): BaseBody {
  const hash = createHash('sha256');
  let resolveSha!: (sha: string) => void;
  let rejectSha!: (err: unknown) => void;
  const sha256 = new Promise<string>((resolve, reject) => {
    resolveSha = resolve;
    rejectSha = reject;
  });
  sha256.catch(() => undefined);
  async function* pieces(): AsyncGenerator<Buffer> {
    try {
      let pos = 0;
      while (pos < bytes) {
        await pacer.ready();
        const piece = await readExactly(fh, pos, Math.min(pieceSize, bytes - pos));
        if (piece === null) {
          throw new RfError('RF_CORRUPT', `${where} shrank while it was copied`, {
            details: { file: where, position: pos, bytes },
            hint: 'Redis replaces a base by rename, never in place: check what else writes to this directory',
          });
        }
        hash.update(piece);
        pos += piece.length;
        yield piece;
        pacer.sent();
      }
      resolveSha(hash.digest('hex'));
    } catch (err) {
      rejectSha(err);
      throw err;
    }
  }
  // No read-ahead: a piece is read (and its pause started) only when the sink asks for the next,
  // so a sink that stalled cannot then send buffered pieces back to back, faster than the pause.
  return { stream: Readable.from(pieces(), { objectMode: false, highWaterMark: 0 }), sha256 };
}
