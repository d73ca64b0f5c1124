/** One argument of a Redis command. Numbers are sent as their decimal text, as Redis expects. */
export type CommandArg = string | Buffer | number;

/**
 * Encodes a command as a RESP multibulk array of bulk strings (`*N\r\n` then N × `$len\r\n…\r\n`),
 * the only request form Redis accepts from a replica or in an AOF. Strings are UTF-8; Buffers are
 * copied byte for byte, so binary values round-trip.
 */
export function encodeCommand(args: ReadonlyArray<CommandArg>): Buffer {
  // Lengths first, so the whole command lands in one allocation and goes out in one socket write.
  const parts: Array<string | Buffer> = new Array(args.length);
  const lengths: number[] = new Array(args.length);
  let size = headerLength(args.length);
  for (let i = 0; i < args.length; i++) {
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
    parts[i] = part;
    lengths[i] = length;
    size += headerLength(length) + length + 2;
  }

  const out = Buffer.allocUnsafe(size);
  let at = out.write(`*${args.length}\r\n`, 0, 'latin1');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    at += out.write(`$${lengths[i]}\r\n`, at, 'latin1');
    at += typeof part === 'string' ? out.write(part, at, 'utf8') : part.copy(out, at);
    out[at++] = 13;
    out[at++] = 10;
  }
  return out;
}

/** Bytes of a `*N\r\n` or `$N\r\n` line. */
function headerLength(n: number): number {
  return String(n).length + 3;
}
