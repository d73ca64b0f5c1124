import { RfError } from '../errors.js';

/**
 * The RDB versions rf reads, and who writes them (rdb.h RDB_VERSION of each release):
 *   9  Redis 5.0–6.2     10  Redis 7.0     11  Redis 7.2, Valkey 7.2–8.x
 *   12 Redis 7.4–8.4 (hash-field expiry: types 24, 25; 22 and 23 from the 7.4 release candidates)
 * Redis 8.6 writes 13 and 8.8 writes 14; Valkey 9 writes 80 and up behind a `VALKEY` magic and
 * gives type 22 another layout. Those are refused by name, not misread.
 */
export const MAX_RDB_VERSION = 12;

/** "REDIS" + 4 digits, or (Valkey 9 and later) "VALKEY" + 3 digits: nine bytes either way. */
export const RDB_HEADER_LEN = 9;

const WRITERS: Record<number, string> = {
  9: 'Redis 5.0 to 6.2',
  10: 'Redis 7.0',
  11: 'Redis 7.2 or Valkey 7.2 to 8.x',
  12: 'Redis 7.4 to 8.4',
  13: 'Redis 8.6',
  14: 'Redis 8.8',
};

/** Who writes an RDB of this version, for messages: `Redis 7.0`, `Redis 8.6 or later`. */
export function rdbWriter(version: number): string {
  return WRITERS[version] ?? (version > 14 ? 'a Redis newer than 8.8' : `Redis before 5.0`);
}

export type RdbHeader =
  | { kind: 'rdb'; version: number }
  /** Not an RDB header at all: the caller reports it as corruption in its own terms. */
  | { kind: 'not-rdb' };

/**
 * Reads the 9-byte header. A version rf cannot read throws RF_RDB_UNSUPPORTED naming the
 * version and its writer, so a newer master is refused when its first snapshot arrives,
 * before the archive holds something no restore could use.
 */
export function readRdbHeader(header: Buffer, source: string): RdbHeader {
  const text = header.toString('latin1', 0, RDB_HEADER_LEN);
  const valkey = /^VALKEY(\d{3})$/.exec(text);
  if (valkey !== null) {
    const version = Number(valkey[1]);
    throw unsupported(
      source,
      version,
      `Valkey's own format (VALKEY magic, RDB ${version}; Valkey 9.0 or later)`,
    );
  }
  const redis = /^REDIS(\d{4})$/.exec(text);
  // rdbLoad rejects a version below 1 too ("Can't handle RDB format version").
  if (redis === null || Number(redis[1]) < 1) return { kind: 'not-rdb' };
  const version = Number(redis[1]);
  if (version > MAX_RDB_VERSION) {
    throw unsupported(source, version, `RDB version ${version} (${rdbWriter(version)})`);
  }
  return { kind: 'rdb', version };
}

function unsupported(source: string, version: number, what: string): RfError {
  return new RfError(
    'RF_RDB_UNSUPPORTED',
    `${source} is in ${what}, which this rf cannot read: it reads RDB versions up to ${MAX_RDB_VERSION} (${rdbWriter(MAX_RDB_VERSION)})`,
    {
      details: { source, rdbVersion: version, maxRdbVersion: MAX_RDB_VERSION },
      hint: 'archive this master with an rf release that reads its RDB version; nothing of this snapshot was kept',
    },
  );
}

/** A value type or opcode the walker does not know, in a header version it does: refused by name. */
export function unknownType(source: string, version: number, type: number, at: number): RfError {
  return new RfError(
    'RF_RDB_UNSUPPORTED',
    `${source} holds a value of RDB type ${type} at byte ${at}, which rf cannot read (the file says RDB ${version}, ${rdbWriter(version)})`,
    {
      details: { source, rdbVersion: version, type, position: at },
      hint: 'a module type or a newer server wrote it; archive this master with an rf release that reads it',
    },
  );
}
