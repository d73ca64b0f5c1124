import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { errnoCode, RfError } from '../errors.js';
import { Crc64 } from '../rdb/crc64.js';
import type { BaseMeta } from '../store/types.js';

export function basePath(storeDir: string, base: BaseMeta): string {
  return path.join(storeDir, base.file);
}

function checksumError(base: BaseMeta, file: string, actual: string, bytes: number): RfError {
  return new RfError('RF_CHECKSUM', `base ${base.file} does not match its checksum`, {
    details: {
      file,
      timeline: base.timeline,
      offset: base.offset,
      expected: base.sha256,
      actual,
      bytes,
      expectedBytes: base.bytes,
    },
    hint: 'run `rf verify` to list every damaged part of the archive; a restore from an earlier or later base may still work',
  });
}

/**
 * The base's bytes, streamed, with its sha256 checked at the end: a mismatch rejects the last
 * read, so a consumer that writes as it reads must treat its output as void on error.
 */
export async function* readBase(storeDir: string, base: BaseMeta): AsyncIterable<Buffer> {
  const file = basePath(storeDir, base);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
      const buf = chunk as Buffer;
      hash.update(buf);
      bytes += buf.length;
      yield buf;
    }
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw new RfError('RF_CORRUPT', `base file ${base.file} is missing`, {
        details: { file, timeline: base.timeline, offset: base.offset },
        hint: 'run `rf verify` to list every damaged part of the archive',
        cause: err,
      });
    }
    throw err;
  }
  const actual = hash.digest('hex');
  if (actual !== base.sha256 || bytes !== base.bytes)
    throw checksumError(base, file, actual, bytes);
}

/** Checks the base against its checksum without keeping anything. */
export async function checkBase(storeDir: string, base: BaseMeta): Promise<void> {
  for await (const _ of readBase(storeDir, base)) {
    // reading is the check
  }
}

/**
 * An RDB with no keys (header, EOF opcode, CRC64), for a target whose base comes as commands:
 * the replication protocol always starts with a snapshot. `version` 9 is one every Redis from
 * 5.0 on loads (6.2 refuses 10: "Can't handle RDB format version 10").
 */
export function emptyRdb(version = 10): Buffer {
  const header = `REDIS${String(version).padStart(4, '0')}`;
  const body = Buffer.concat([Buffer.from(header, 'latin1'), Buffer.from([0xff])]);
  const crc = Buffer.alloc(8);
  crc.writeBigUInt64LE(new Crc64().update(body).value);
  return Buffer.concat([body, crc]);
}
