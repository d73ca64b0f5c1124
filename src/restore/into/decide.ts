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

/** A key without expiry: one value for every such key of a restore. */
const NO_EXPIRY: Expiry = Object.freeze({ kind: 'ttl', ttl: 0, absolute: false });

/**
 * `--ttl keep`: the absolute expiry the key had at T, unless it has passed by `now`.
 * `--ttl shift`: the time the key had left at T, counted from when the target restores it.
 * `expireAt` is -1 for a key without expiry.
 */
export function expiryFor(expireAt: number, mode: TtlMode, until: number, now: number): Expiry {
  if (expireAt < 0) return NO_EXPIRY;
  if (mode === 'keep') {
    return expireAt <= now + EXPIRY_MARGIN_MS
      ? { kind: 'expired' }
      : { kind: 'ttl', ttl: expireAt, absolute: true };
  }
  const left = expireAt - until;
  return left <= 0 ? { kind: 'expired' } : { kind: 'ttl', ttl: left, absolute: false };
}

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
