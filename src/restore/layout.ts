import { RfError } from '../errors.js';
import { redisMajor } from '../replication/server-info.js';
import type { ServerInfo } from '../store/types.js';

/**
 * The on-disk form of an `rf restore --out` directory. Redis 7 boots from `appendonlydir/`
 * (manifest, base, incr; aof.c loadAppendOnlyFiles). Redis 6 knows only one `appendonly.aof`:
 * an RDB preamble and the commands after it, which 6.x loads whatever `aof-use-rdb-preamble`
 * says (6.2 aof.c loadAppendOnlyFile checks for the "REDIS" signature). Redis 7 also boots the
 * Redis 6 form, converting it into an appendonlydir at start (aof.c aofUpgradePrepare).
 */
export type OutLayout = 'redis6' | 'redis7';

export const OUT_LAYOUTS: readonly OutLayout[] = ['redis6', 'redis7'];

/** What the archive says about the server a restore is meant for. */
export interface LayoutEvidence {
  /** The RDB version of the base the restore starts from (the stream's, or an AOF RDB base). */
  rdbVersion: number | null;
  /** The AOF record's own form: a Redis 6 single file, or Redis 7 multi-part. */
  aofFiles: 'single' | 'multi-part' | null;
  /** The master's INFO server, recorded at capture. */
  server: ServerInfo | null;
}

/**
 * RDB 9 is the newest version Redis 6.x reads and writes (rdb.h RDB_VERSION 9 in 6.0 and 6.2);
 * Redis 7.0 writes 10.
 */
const LAST_REDIS6_RDB = 9;

export function parseLayout(value: string): OutLayout {
  if ((OUT_LAYOUTS as readonly string[]).includes(value)) return value as OutLayout;
  throw new RfError('RF_USAGE', `--layout ${JSON.stringify(value)} is not a layout rf writes`, {
    details: { layout: value, allowed: OUT_LAYOUTS },
    hint: 'pass --layout redis6 (one appendonly.aof) or --layout redis7 (appendonlydir), or leave it out to follow the archive',
  });
}

/** The layout --out writes, and why: the override, else the version the archive recorded. */
export function chooseLayout(
  evidence: LayoutEvidence,
  override?: OutLayout,
): { layout: OutLayout; reason: string } {
  if (override !== undefined) return { layout: override, reason: `--layout ${override}` };
  const { rdbVersion, aofFiles, server } = evidence;
  if (rdbVersion !== null) {
    return rdbVersion <= LAST_REDIS6_RDB
      ? { layout: 'redis6', reason: `the base is RDB version ${rdbVersion} (Redis 6 or older)` }
      : { layout: 'redis7', reason: `the base is RDB version ${rdbVersion} (Redis 7 or later)` };
  }
  if (aofFiles === 'single') {
    return { layout: 'redis6', reason: 'the AOF record is a single appendonly.aof (Redis 6)' };
  }
  if (aofFiles === 'multi-part') {
    return { layout: 'redis7', reason: 'the AOF record is an appendonlydir (Redis 7 or later)' };
  }
  if (server !== null && redisMajor(server) > 0 && redisMajor(server) < 7) {
    return { layout: 'redis6', reason: `the source is ${server.name} ${server.version}` };
  }
  return { layout: 'redis7', reason: 'the default (Redis 7 or later)' };
}
