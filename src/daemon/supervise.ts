import { isRfError } from '../errors.js';
import { RedisReplyError } from '../resp/client.js';

/**
 * The RF_ code a failure is counted under in `rf_errors_total{code}` and `rf info`: its own,
 * RF_MASTER_ERROR for an error reply from the master (a NOPERM from an ACL that lacks a
 * command), RF_INTERNAL for anything else, which is a bug in rf.
 */
export function codeOf(err: unknown): string {
  if (isRfError(err)) return err.code;
  if (err instanceof RedisReplyError) return 'RF_MASTER_ERROR';
  return 'RF_INTERNAL';
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Counts failures by code and keeps the last one. A job that retries on a short period (the
 * master watch, every 100 ms) reports an episode once: `episode` is true for the first failure
 * after a success.
 */
export class ErrorCounts {
  readonly byCode: Record<string, number> = {};
  last: { code: string; message: string; at: number; job: string } | null = null;
  private readonly failing = new Set<string>();

  note(job: string, err: unknown): string {
    const code = codeOf(err);
    this.byCode[code] = (this.byCode[code] ?? 0) + 1;
    this.last = { code, message: messageOf(err), at: Date.now(), job };
    return code;
  }

  /** For a job that retries often: counts and returns the code only when an episode begins. */
  episode(job: string, err: unknown): string | null {
    if (this.failing.has(job)) return null;
    this.failing.add(job);
    return this.note(job, err);
  }

  recovered(job: string): boolean {
    return this.failing.delete(job);
  }
}
