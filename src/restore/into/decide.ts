import { encodeBulks } from '../../resp/encode.js';

export type ConflictMode = 'fail' | 'skip' | 'replace';
export type TtlMode = 'keep' | 'shift';

/**
 * A key whose absolute expiry is this close is counted as expired rather than written: RESTORE
 * with an expiry already past writes nothing, and with REPLACE it deletes the key it was to
 * replace (cluster.c restoreCommand, checkAlreadyExpired), and rf never deletes a target key.
 */
export const EXPIRY_MARGIN_MS = 1_000;

/** What RESTORE's ttl argument should be, or why the key is not written. */
export type Expiry = { kind: 'expired' } | { kind: 'ttl'; ttl: number; absolute: boolean };

/**
 * `--ttl keep`: the absolute expiry the key had at T, unless it has passed by `now`.
 * `--ttl shift`: the time the key had left at T, counted from when the target restores it.
 * `expireAt` is -1 for a key without expiry.
 */
export function expiryFor(expireAt: number, mode: TtlMode, until: number, now: number): Expiry {
  if (expireAt < 0) return { kind: 'ttl', ttl: 0, absolute: false };
  if (mode === 'keep') {
    return expireAt <= now + EXPIRY_MARGIN_MS
      ? { kind: 'expired' }
      : { kind: 'ttl', ttl: expireAt, absolute: true };
  }
  const left = expireAt - until;
  return left <= 0 ? { kind: 'expired' } : { kind: 'ttl', ttl: left, absolute: false };
}

/**
 * `RESTORE key ttl payload [ABSTTL] [REPLACE]` (cluster.c restoreCommand), encoded: one is made
 * per key of the restore.
 */
export function restoreCommand(
  key: Buffer,
  payload: Buffer,
  expiry: { ttl: number; absolute: boolean },
  replace: boolean,
): Buffer {
  const ttl = expiry.ttl === 0 ? NO_TTL : Buffer.from(String(expiry.ttl));
  if (!expiry.absolute && !replace) return encodeBulks([RESTORE, key, ttl, payload]);
  const args = [RESTORE, key, ttl, payload];
  if (expiry.absolute) args.push(ABSTTL);
  if (replace) args.push(REPLACE);
  return encodeBulks(args);
}

const RESTORE = Buffer.from('RESTORE');
const NO_TTL = Buffer.from('0');
const ABSTTL = Buffer.from('ABSTTL');
const REPLACE = Buffer.from('REPLACE');

/** Names as they appear in output: UTF-8 when they are, else with \xNN escapes. */
export function keyName(key: Buffer): string {
  const text = key.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(key)) return text;
  return [...key]
    .map((b) =>
      b >= 0x20 && b < 0x7f && b !== 0x5c
        ? String.fromCharCode(b)
        : `\\x${b.toString(16).padStart(2, '0')}`,
    )
    .join('');
}

/** At most `limit` names are kept for the output; the count is kept apart. */
export class NameList {
  readonly names: string[] = [];
  count = 0;

  constructor(private readonly limit = 100) {}

  add(key: Buffer): void {
    this.count++;
    if (this.names.length < this.limit) this.names.push(keyName(key));
  }
}
