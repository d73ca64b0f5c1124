/**
 * Expected failures carry a stable upper-case `code` (messages may change, codes may not),
 * the values involved, and the next thing an operator can do. A misuse of an internal API
 * is a TypeError instead: that is a bug, not an outcome.
 */

/** Process exit codes: part of the command-line contract (DESIGN.md). */
export const Exit = {
  ok: 0,
  problems: 1,
  usage: 2,
  unreachable: 3,
  integrity: 4,
  /** A bug in rf, not an outcome (sysexits.h EX_SOFTWARE). */
  internal: 70,
} as const;
export type ExitCode = (typeof Exit)[keyof typeof Exit];

const codes = {
  RF_USAGE: Exit.usage,
  RF_BAD_URL: Exit.usage,
  RF_BAD_TIME: Exit.usage,
  RF_BAD_DURATION: Exit.usage,
  RF_TIME_OUT_OF_RANGE: Exit.usage,
  RF_TIME_IN_GAP: Exit.usage,
  RF_TIME_IMPRECISE: Exit.usage,
  RF_SOURCE_IS_REPLICA: Exit.usage,
  RF_TARGET_NOT_EMPTY: Exit.usage,
  RF_OUT_DIR_NOT_EMPTY: Exit.usage,
  RF_UNKNOWN_SOURCE: Exit.usage,
  RF_AOF_OFF: Exit.usage,
  RF_RDB_UNSUPPORTED: Exit.usage,
  RF_AOF_MANIFEST: Exit.integrity,
  RF_AOF_REWRITE: Exit.unreachable,
  RF_AOF_DIVERGED: Exit.integrity,
  RF_CHUNK_CONFLICT: Exit.integrity,
  RF_CHUNK_ORDER: Exit.integrity,
  RF_INGEST: Exit.unreachable,
  RF_CONNECT: Exit.unreachable,
  RF_AUTH: Exit.unreachable,
  RF_TIMEOUT: Exit.unreachable,
  RF_PROTOCOL: Exit.unreachable,
  RF_MASTER_ERROR: Exit.unreachable,
  RF_STORE_MISSING: Exit.unreachable,
  RF_STORE_UNWRITABLE: Exit.unreachable,
  RF_STORE_LOCKED: Exit.unreachable,
  RF_DAEMON: Exit.unreachable,
  RF_AOF_DIR: Exit.unreachable,
  RF_TARGET: Exit.unreachable,
  RF_OUT_UNWRITABLE: Exit.unreachable,
  RF_REDIS_SERVER: Exit.unreachable,
  RF_INTO_CONFLICT: Exit.usage,
  RF_INTO_INTERRUPTED: Exit.unreachable,
  RF_INTO_REFUSED: Exit.unreachable,
  RF_VALUE_TOO_LARGE: Exit.usage,
  RF_CLUSTER: Exit.unreachable,
  RF_NOT_CLUSTER: Exit.usage,
  /** A cluster restore at a T where some slots had no owner in rf's record. */
  RF_SLOTS_UNOWNED: Exit.usage,
  RF_SOURCE_IS_CLUSTER: Exit.usage,
  RF_SENTINEL_UNKNOWN_MASTER: Exit.usage,
  RF_SENTINEL_UNREACHABLE: Exit.unreachable,
  RF_REPO_URL: Exit.usage,
  RF_REPO_KEY: Exit.usage,
  RF_REPO_BUCKET: Exit.unreachable,
  RF_REPO_AUTH: Exit.unreachable,
  RF_REPO_UNREACHABLE: Exit.unreachable,
  RF_REPO_ONLY: Exit.unreachable,
  RF_REPO_CONFLICT: Exit.integrity,
  RF_CHECKSUM: Exit.integrity,
  RF_CORRUPT: Exit.integrity,
} as const satisfies Record<string, ExitCode>;

export type RfCode = keyof typeof codes;

export interface RfErrorOptions {
  /** Values involved, shown to the operator and in `--json` output. Never put a secret here. */
  details?: Record<string, unknown>;
  /** What to do next, for instance the command to run. */
  hint?: string;
  cause?: unknown;
}

export class RfError extends Error {
  override readonly name = 'RfError';
  readonly code: RfCode;
  readonly details: Record<string, unknown>;
  readonly hint: string | undefined;

  constructor(code: RfCode, message: string, options: RfErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    this.hint = options.hint;
  }

  get exitCode(): ExitCode {
    return codes[this.code];
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(Object.keys(this.details).length > 0 ? { details: this.details } : {}),
      ...(this.hint === undefined ? {} : { hint: this.hint }),
    };
  }
}

export function isRfError(err: unknown, code?: RfCode): err is RfError {
  return err instanceof RfError && (code === undefined || err.code === code);
}

/** Node system errors carry a string `code` such as ECONNREFUSED. */
export function errnoCode(err: unknown): string | undefined {
  if (err !== null && typeof err === 'object' && 'code' in err && typeof err.code === 'string') {
    return err.code;
  }
  return undefined;
}

/** An error and the causes a library wrapped it in, outermost first (five deep at most). */
function causeChain(err: unknown): Error[] {
  const chain: Error[] = [];
  for (let e: unknown = err; e instanceof Error && chain.length < 5; e = e.cause) chain.push(e);
  return chain;
}

/** The `code` of an error or of any cause it wraps: LevelDB's sit one or two levels down. */
export function hasCode(err: unknown, code: string): boolean {
  return causeChain(err).some((e) => errnoCode(e) === code);
}

const DISK_ERRORS: Array<[string, RegExp, string]> = [
  ['ENOSPC', /ENOSPC|No space left on device/, 'the disk is full'],
  ['EDQUOT', /EDQUOT|Disk quota exceeded/, 'the disk quota is used up'],
  ['EROFS', /EROFS|Read-only file system/, 'the file system is read-only'],
  ['EIO', /\bEIO\b|Input\/output error/, 'the disk reports an I/O error'],
];

/**
 * A write the disk refused (full, over quota, read-only, failing; or any LevelDB IO error), told
 * in words; undefined for every other error, an RfError included.
 */
export function diskFailure(err: unknown): { code: string; why: string; text: string } | undefined {
  if (err instanceof RfError) return undefined;
  // What the system said, through the library's wrapping.
  const text = causeChain(err)
    .map((e) => e.message)
    .join(': ');
  const known = DISK_ERRORS.find(([code, pattern]) => hasCode(err, code) || pattern.test(text));
  if (known !== undefined) return { code: known[0], why: known[2], text };
  if (hasCode(err, 'LEVEL_IO_ERROR') || /IO error/.test(text)) {
    return { code: 'EIO', why: 'the disk refused a write', text };
  }
  return undefined;
}
