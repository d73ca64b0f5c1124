import { statSync } from 'node:fs';

/**
 * Warnings for the operator that are not errors: a secret file others can read, a store others
 * can enter. The command line shows them (main wires the sink to stderr); a library caller
 * that wires nothing gets none. Each is given once.
 */
let sink: (text: string) => void = () => undefined;
const given = new Set<string>();

export function setWarningSink(to: (text: string) => void): void {
  sink = to;
}

export function warnOnce(text: string): void {
  if (given.has(text)) return;
  given.add(text);
  sink(text);
}

/** Warns when a file holding a secret is open to its group or to everyone (0644 and the like). */
export function warnIfSharedSecret(flag: string, file: string): void {
  const mode = modeOf(file);
  if (mode === null || (mode & 0o077) === 0) return;
  warnOnce(
    `${flag} ${file} can be read by others (mode ${octal(mode)}): chmod 600 it, it holds a secret`,
  );
}

/** Warns when the store directory is open to its group or to everyone: it holds every value. */
export function warnIfSharedStore(dir: string): void {
  const mode = modeOf(dir);
  if (mode === null || (mode & 0o077) === 0) return;
  warnOnce(
    `the store ${dir} is open to others (mode ${octal(mode)}): chmod 700 it, it holds every value the master held`,
  );
}

function modeOf(p: string): number | null {
  try {
    return statSync(p).mode & 0o777;
  } catch {
    return null;
  }
}

const octal = (mode: number) => `0${mode.toString(8).padStart(3, '0')}`;
