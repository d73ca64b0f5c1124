import { Exit, isRfError, RfError } from '../errors.js';

/**
 * Control characters (C0 but newline and tab, DEL, C1) as `\xNN`. Text rf prints may carry what
 * it received (a file name from rf ship, a key, a master's error): an ESC or OSC sequence in it
 * would act on the terminal (retitle it, clear it, forge lines) instead of being read.
 */
export function printable(text: string): string {
  return text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: these are what it escapes
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** The only place rf writes to the terminal outside of logs. */
export const out = {
  line(text = ''): void {
    process.stdout.write(`${printable(text)}\n`);
  },
  /** JSON escapes every control character itself. */
  json(value: unknown): void {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  },
  note(text: string): void {
    process.stderr.write(`${printable(text)}\n`);
  },
};

/** Prints an error for a person (stderr) and, with --json, for a program (stdout); returns the exit code. */
export function reportError(err: unknown, json: boolean): number {
  if (isRfError(err)) {
    const lines = [`rf: ${err.code}: ${err.message}`];
    for (const [k, v] of Object.entries(err.details)) {
      if (v !== undefined) lines.push(`  ${k}: ${readable(v)}`);
    }
    if (err.hint) lines.push(`  next: ${err.hint}`);
    out.note(lines.join('\n'));
    if (json) out.json({ ok: false, error: err.toJSON() });
    return err.exitCode;
  }
  // Anything else is a bug in rf, not an outcome: show the stack.
  out.note(
    `rf: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
  );
  if (json)
    out.json({
      ok: false,
      error: { code: 'RF_INTERNAL', message: String((err as Error)?.message ?? err) },
    });
  return Exit.internal;
}

/** A detail as a person reads it: `{from, until}` as `from A until B`, lists one item after another. */
function readable(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.length === 0 ? '(none)' : v.map(readable).join('; ');
  if (v !== null && typeof v === 'object')
    return Object.entries(v)
      .map(([k, x]) => `${k} ${readable(x)}`)
      .join(' ');
  return JSON.stringify(v);
}

export function usageError(message: string, hint?: string): RfError {
  return new RfError('RF_USAGE', message, hint === undefined ? {} : { hint });
}

/** A byte count for a person: 1024-based units, one decimal. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}
