import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { RfError } from '../errors.js';
import { RdbChecker } from '../rdb/check.js';
import { rdbLength } from '../rdb/length.js';
import { diskError } from '../store/store.js';
import type { SocketReader } from './reader.js';

export interface ReceivedRdb {
  bytes: number;
  rdbVersion: number;
  sha256: string;
  transfer: 'disk' | 'diskless';
}

const EOF_MARK_LENGTH = 40;

/**
 * Streams the snapshot that follows +FULLRESYNC into `file`, never holding it whole. Both
 * framings of src/replication.c (readSyncBulkPayload): `$<len>\r\n` and exactly len bytes with
 * no trailing CRLF (disk-based), or `$EOF:<40-byte mark>\r\n`, the RDB, the same mark
 * (diskless). Bytes read past the end belong to the stream and are handed back to the reader.
 * The RDB's own trailer (EOF opcode and CRC64) is checked on the way: a damaged transfer never
 * becomes a base.
 */
export async function receiveRdb(
  reader: SocketReader,
  file: string,
  timeoutMs: number,
  onBytes?: (total: number) => void,
  /** False for a file that only lives as long as the process (no fsync, no second walk). */
  durable = true,
): Promise<ReceivedRdb> {
  const header = await reader.readLine(timeoutMs, 'the snapshot header ($<length> or $EOF:<mark>)');
  if (!header.startsWith('$')) {
    throw new RfError(
      'RF_PROTOCOL',
      `expected a snapshot header from the master, got ${JSON.stringify(header.slice(0, 64))}`,
      {
        details: { header: header.slice(0, 64) },
      },
    );
  }
  const hash = createHash('sha256');
  const rdb = new RdbChecker(`the snapshot from the master (${file})`);
  const fh = await fs.open(file, 'wx', 0o600);
  // The snapshot goes to <store>/tmp until it is complete and checked.
  const store = path.dirname(path.dirname(file));
  let total = 0;
  const write = async (buf: Buffer) => {
    if (buf.length === 0) return;
    hash.update(buf);
    rdb.update(buf);
    await fh.write(buf).catch((err: unknown) => {
      throw diskError(store, err, file);
    });
    total += buf.length;
    onBytes?.(total);
  };
  try {
    let transfer: ReceivedRdb['transfer'];
    if (header.startsWith('$EOF:')) {
      transfer = 'diskless';
      const mark = Buffer.from(header.slice(5), 'latin1');
      if (mark.length !== EOF_MARK_LENGTH) {
        throw new RfError(
          'RF_PROTOCOL',
          `diskless EOF mark has ${mark.length} bytes, expected ${EOF_MARK_LENGTH}`,
          {
            details: { header },
          },
        );
      }
      // Hold back the last 39 bytes of what was read: the mark may straddle two reads.
      let tail = Buffer.alloc(0);
      for (;;) {
        const chunk = await reader.read(timeoutMs, 'the diskless snapshot');
        const window = tail.length === 0 ? chunk : Buffer.concat([tail, chunk]);
        const at = window.indexOf(mark);
        if (at !== -1) {
          await write(window.subarray(0, at));
          reader.unshift(window.subarray(at + EOF_MARK_LENGTH));
          break;
        }
        const keep = Math.min(window.length, EOF_MARK_LENGTH - 1);
        await write(window.subarray(0, window.length - keep));
        tail = Buffer.from(window.subarray(window.length - keep));
      }
    } else {
      transfer = 'disk';
      const length = Number(header.slice(1));
      if (!Number.isSafeInteger(length) || length < 0) {
        throw new RfError('RF_PROTOCOL', `bad snapshot length in ${JSON.stringify(header)}`, {
          details: { header },
        });
      }
      let remaining = length;
      while (remaining > 0) {
        const chunk = await reader.read(
          timeoutMs,
          `the snapshot (${remaining} of ${length} bytes left)`,
        );
        if (chunk.length > remaining) {
          reader.unshift(chunk.subarray(remaining));
          await write(chunk.subarray(0, remaining));
          remaining = 0;
        } else {
          await write(chunk);
          remaining -= chunk.length;
        }
      }
    }
    const checked = rdb.finish();
    if (durable) {
      await fh.sync().catch((err: unknown) => {
        throw diskError(store, err, file);
      });
      await walkSnapshot(file, total);
    }
    return { bytes: total, sha256: hash.digest('hex'), transfer, rdbVersion: checked.version };
  } finally {
    await fh.close();
  }
}

/**
 * Walks every value of the received snapshot (src/rdb/length.ts), so a type rf cannot read (a
 * module's, a newer server's) is refused now, while the master can still be asked again,
 * rather than found at restore time. The checksum has already passed: a walk that ends
 * anywhere but at the file's end is a format rf misreads.
 */
async function walkSnapshot(file: string, total: number): Promise<void> {
  const where = `the snapshot from the master (${file})`;
  const fh = await fs.open(file, 'r');
  try {
    const end = await rdbLength(fh, total, where);
    if (end !== total) {
      throw new RfError(
        'RF_RDB_UNSUPPORTED',
        `${where} ends at byte ${end} by rf's reading of it, but holds ${total} bytes`,
        {
          details: { file, end, bytes: total },
          hint: 'the master writes a format this rf misreads; archive it with an rf release that reads its RDB version',
        },
      );
    }
  } finally {
    await fh.close();
  }
}
