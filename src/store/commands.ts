/**
 * The one classification of commands rf makes, from the bytes of their names: what changes data,
 * what is stream chatter, and the SELECT/MULTI/EXEC state a cut must respect. Capture, stream
 * and AOF restore, verify and log all use it.
 */

/** Lower-cases an ASCII command name. */
export function nameOf(arg: Buffer | undefined): string {
  return arg === undefined ? '' : arg.toString('latin1').toLowerCase();
}

/**
 * What a command is to the archive, decided from the bytes of its name without making a string:
 * this runs for every command captured, planned or replayed.
 */
export const Kind = {
  /** Changes data. */
  write: 0,
  select: 1,
  multi: 2,
  exec: 3,
  /** PING and REPLCONF: stream chatter, never replayed. */
  chatter: 4,
  /** PUBLISH and SPUBLISH: no data, and an AOF never holds them (aof.c). */
  publish: 5,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** Case-insensitive compare of buf[start, start + lit.length) with a lower-case ASCII literal. */
function is(buf: Buffer, start: number, length: number, lit: string): boolean {
  if (length !== lit.length) return false;
  for (let i = 0; i < length; i++) {
    if ((buf[start + i]! | 0x20) !== lit.charCodeAt(i)) return false;
  }
  return true;
}

export function kindAt(buf: Buffer, start: number, length: number): Kind {
  switch (length) {
    case 4:
      if (is(buf, start, 4, 'ping')) return Kind.chatter;
      if (is(buf, start, 4, 'exec')) return Kind.exec;
      return Kind.write;
    case 5:
      return is(buf, start, 5, 'multi') ? Kind.multi : Kind.write;
    case 6:
      return is(buf, start, 6, 'select') ? Kind.select : Kind.write;
    case 7:
      return is(buf, start, 7, 'publish') ? Kind.publish : Kind.write;
    case 8:
      if (is(buf, start, 8, 'replconf')) return Kind.chatter;
      if (is(buf, start, 8, 'spublish')) return Kind.publish;
      return Kind.write;
    default:
      return Kind.write;
  }
}

/** The kind of a command from its first argument. */
export function kindOf(name: Buffer | undefined): Kind {
  return name === undefined ? Kind.write : kindAt(name, 0, name.length);
}

/** The kind of a stored frame, reading only its first argument (`*N\r\n$L\r\n<name>`). */
export function frameKind(frame: Buffer): Kind {
  return frameKindAt(frame, 0);
}

/** frameKind of the frame that starts at `buf[pos]`, without slicing it out. */
export function frameKindAt(buf: Buffer, pos: number): Kind {
  // Read byte by byte: the two lines are a few bytes long, shorter than a native search's call.
  const end = buf.length;
  let i = pos + 1;
  while (i < end && buf[i] !== 13) i++;
  let len = 0;
  for (i += 3; i < end; i++) {
    const c = buf[i]!;
    if (c === 13) return kindAt(buf, i + 2, len);
    len = len * 10 + c - 48;
  }
  return Kind.write;
}

/** Whether the frame at `pos` names the command `lit` (lower-case ASCII), making no string. */
export function frameNameIs(buf: Buffer, pos: number, lit: string): boolean {
  const end = buf.length;
  let i = pos + 1;
  while (i < end && buf[i] !== 13) i++;
  let len = 0;
  for (i += 3; i < end && buf[i] !== 13; i++) len = len * 10 + buf[i]! - 48;
  return is(buf, i + 2, len, lit);
}

/** Whether a frame is REPLCONF GETACK, which asks the replica where it is. */
export function isGetAck(args: readonly Buffer[]): boolean {
  const [a, b] = args;
  return (
    a !== undefined &&
    b !== undefined &&
    is(a, 0, a.length, 'replconf') &&
    is(b, 0, b.length, 'getack')
  );
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

  /** `args` is needed for SELECT only (its db); other kinds never read it. */
  applyKind(kind: Kind, args: readonly Buffer[] | (() => readonly Buffer[]), offset: number): void {
    switch (kind) {
      case Kind.select: {
        const list = typeof args === 'function' ? args() : args;
        const db = Number.parseInt(list[1]?.toString('latin1') ?? '', 10);
        if (Number.isInteger(db) && db >= 0) this.db = db;
        break;
      }
      case Kind.multi:
        this.multiAt = offset;
        break;
      case Kind.exec:
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
