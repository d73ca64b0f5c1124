/** What the archive needs to know about a stream command, from its lower-cased name. */

/** Entries that move the offset but change no data: heartbeats and replication chatter. */
const NOT_WRITES = new Set(['ping', 'replconf', 'publish', 'spublish', 'select', 'multi', 'exec']);

export function isWrite(name: string): boolean {
  return !NOT_WRITES.has(name);
}

/** Lower-cases an ASCII command name without allocating for the common short names. */
export function nameOf(arg: Buffer | undefined): string {
  return arg === undefined ? '' : arg.toString('latin1').toLowerCase();
}

/**
 * Tracks the selected db and an open MULTI across entries, in stream order. A SELECT inside a
 * MULTI takes effect in order when the transaction is applied, so sequential tracking matches
 * what a replica (or an AOF load) does.
 */
export class CommandState {
  constructor(
    public db: number,
    public multiAt: number | null,
  ) {}

  apply(name: string, args: readonly Buffer[], offset: number): void {
    switch (name) {
      case 'select': {
        const db = Number.parseInt(args[1]?.toString('latin1') ?? '', 10);
        if (Number.isInteger(db) && db >= 0) this.db = db;
        break;
      }
      case 'multi':
        this.multiAt = offset;
        break;
      case 'exec':
        this.multiAt = null;
        break;
    }
  }
}

/** The bulk strings of one stored multibulk frame (validated when it was captured). */
export function parseArgs(frame: Buffer): Buffer[] {
  let pos = frame.indexOf(13);
  const n = Number.parseInt(frame.toString('latin1', 1, pos), 10);
  pos += 2;
  const args: Buffer[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const eol = frame.indexOf(13, pos);
    const len = Number.parseInt(frame.toString('latin1', pos + 1, eol), 10);
    args[i] = frame.subarray(eol + 2, eol + 2 + len);
    pos = eol + 2 + len + 2;
  }
  return args;
}

/** The lower-cased name of a stored frame's command, without splitting the rest of it. */
export function commandName(frame: Buffer): string {
  const eol1 = frame.indexOf(13);
  const eol2 = frame.indexOf(13, eol1 + 2);
  if (eol1 < 0 || eol2 < 0) return '';
  const len = Number.parseInt(frame.toString('latin1', eol1 + 3, eol2), 10);
  return frame.toString('latin1', eol2 + 2, eol2 + 2 + len).toLowerCase();
}
