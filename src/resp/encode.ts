/** One argument of a Redis command. Numbers are sent as their decimal text, as Redis expects. */
export type CommandArg = string | Buffer | number;

/**
 * A command to send: its arguments, or a Buffer that holds it already encoded as one RESP
 * multibulk (restore --into's RESTOREs, into/batch.ts), which is copied as it is.
 */
export type Command = ReadonlyArray<CommandArg> | Buffer;

/**
 * Encodes a command as a RESP multibulk array of bulk strings (`*N\r\n` then N × `$len\r\n…\r\n`),
 * the only request form Redis accepts from a replica or in an AOF. Strings are UTF-8; Buffers are
 * copied byte for byte, so binary values round-trip.
 */
export function encodeCommand(args: ReadonlyArray<CommandArg>): Buffer {
  return encodeCommands([args]);
}

/**
 * Encodes many commands back to back into one buffer, as encodeCommand would each: lengths
 * first, so a whole pipeline lands in one allocation and goes out in one socket write, with no
 * buffer per command and no copy to join them (restore --into sends thousands per batch).
 */
export function encodeCommands(commands: ReadonlyArray<Command>): Buffer {
  let count = 0;
  for (const args of commands) if (!Buffer.isBuffer(args)) count += args.length;
  const parts: Array<string | Buffer> = new Array(count);
  const lengths: number[] = new Array(count);
  let size = 0;
  let n = 0;
  for (const args of commands) {
    if (Buffer.isBuffer(args)) {
      size += args.length;
      continue;
    }
    size += headerLength(args.length);
    for (let i = 0; i < args.length; i++, n++) {
      const arg = args[i];
      let part: string | Buffer;
      if (typeof arg === 'number') {
        if (!Number.isFinite(arg)) {
          throw new TypeError(`encodeCommand: argument ${i} is ${arg}, which Redis cannot parse`);
        }
        part = String(arg);
      } else if (typeof arg === 'string' || Buffer.isBuffer(arg)) {
        part = arg;
      } else {
        throw new TypeError(
          `encodeCommand: argument ${i} is a ${typeof arg}, not a string, Buffer or number`,
        );
      }
      const length = typeof part === 'string' ? Buffer.byteLength(part) : part.length;
      parts[n] = part;
      lengths[n] = length;
      size += headerLength(length) + length + 2;
    }
  }

  const out = Buffer.allocUnsafe(size);
  let at = 0;
  n = 0;
  for (const args of commands) {
    if (Buffer.isBuffer(args)) {
      out.set(args, at);
      at += args.length;
      continue;
    }
    at = writeHeader(out, at, 0x2a, args.length); // '*'
    for (let i = 0; i < args.length; i++, n++) {
      const part = parts[n]!;
      at = writeHeader(out, at, 0x24, lengths[n]!); // '$'
      if (typeof part === 'string') at += out.write(part, at, 'utf8');
      else {
        // TypedArray#set: no call into Buffer#copy's checks for each of thousands of small args.
        out.set(part, at);
        at += part.length;
      }
      out[at++] = 13;
      out[at++] = 10;
    }
  }
  return out;
}

/** Bytes of a `*N\r\n` or `$N\r\n` line. */
export function headerLength(n: number): number {
  return digits(n) + 3;
}

function digits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** Writes `<mark>N\r\n` at `at` digit by digit (no string per header); returns the end. */
export function writeHeader(out: Buffer, at: number, mark: number, n: number): number {
  out[at] = mark;
  const end = at + 1 + digits(n);
  for (let i = end - 1; i > at; i--) {
    out[i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  out[end] = 13;
  out[end + 1] = 10;
  return end + 2;
}
