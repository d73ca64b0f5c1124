/** How `rf log` shows a command: the way redis-cli and MONITOR quote arguments. */

/**
 * One argument quoted like sdscatrepr (redis/redis src/sds.c): printable ASCII as is, `\\`
 * `\"` `\n` `\r` `\t` `\a` `\b` escaped, anything else as `\xHH`. The result pastes back into
 * redis-cli unchanged, binary values included.
 */
export function quoteArg(arg: Uint8Array, maxBytes = Number.POSITIVE_INFINITY): string {
  const shown = arg.length > maxBytes ? arg.subarray(0, maxBytes) : arg;
  if (plain(shown)) {
    const text = Buffer.from(shown.buffer, shown.byteOffset, shown.length).toString('latin1');
    return shown.length < arg.length
      ? `"${text}"…(+${arg.length - shown.length} bytes)`
      : `"${text}"`;
  }
  let s = '"';
  for (const c of shown) {
    switch (c) {
      case 0x5c:
        s += '\\\\';
        break;
      case 0x22:
        s += '\\"';
        break;
      case 0x0a:
        s += '\\n';
        break;
      case 0x0d:
        s += '\\r';
        break;
      case 0x09:
        s += '\\t';
        break;
      case 0x07:
        s += '\\a';
        break;
      case 0x08:
        s += '\\b';
        break;
      default:
        s +=
          c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
    }
  }
  s += '"';
  if (shown.length < arg.length) s += `…(+${arg.length - shown.length} bytes)`;
  return s;
}

/** Printable ASCII but `\` and `"`: the bytes show as they are (most keys and values). */
function plain(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c < 0x20 || c >= 0x7f || c === 0x5c || c === 0x22) return false;
  }
  return true;
}

/** The command as a person reads it: the name upper-cased, then each argument quoted. */
export function formatCommand(args: readonly Buffer[], maxArgBytes?: number): string {
  const [name, ...rest] = args;
  const head = name === undefined ? '' : name.toString('latin1').toUpperCase();
  return [head, ...rest.map((a) => quoteArg(a, maxArgBytes))].join(' ');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * An argument for JSON output: a string when the bytes are valid UTF-8, else `{ base64 }`, so a
 * binary value survives the round trip and a text value stays readable.
 */
export function jsonArg(arg: Buffer): string | { base64: string } {
  try {
    return utf8.decode(arg);
  } catch {
    return { base64: arg.toString('base64') };
  }
}
