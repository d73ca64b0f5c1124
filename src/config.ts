import { readFileSync } from 'node:fs';
import { errnoCode, RfError } from './errors.js';

/** Defaults of the command-line contract (DESIGN.md), for code outside commander's reach. */
export function defaultStore(env: NodeJS.ProcessEnv = process.env): string {
  return env.RF_STORE ?? './rf-data';
}

export function defaultSource(env: NodeJS.ProcessEnv = process.env): string {
  return env.RF_SOURCE ?? env.REDIS_URL ?? 'redis://127.0.0.1:6379';
}

/** A password kept in a file (first line), so it stays out of argv and the environment. */
export function readPasswordFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').split(/\r?\n/)[0] ?? '';
  } catch (err) {
    throw new RfError('RF_USAGE', `cannot read the password file ${file}`, {
      details: { file, errno: errnoCode(err) },
      hint: 'check --password-file: it names a readable file whose first line is the password',
      cause: err,
    });
  }
}

/** Parses a whole number of bytes, with optional k/m/g suffix (1024-based): `--chunk-size 1m`. */
export function parseBytes(flag: string, value: string): number {
  const m = /^(\d+)\s*([kmg]i?b?|b)?$/i.exec(value.trim());
  const units: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
  const unit = m?.[2]?.[0]?.toLowerCase() ?? '';
  const n = m ? Number(m[1]) * (units[unit] ?? Number.NaN) : Number.NaN;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new RfError(
      'RF_USAGE',
      `${flag} takes a positive size in bytes, got ${JSON.stringify(value)}`,
      {
        details: { flag, value },
        hint: `for example ${flag} 1048576 or ${flag} 1m`,
      },
    );
  }
  return n;
}

export function parseWholeNumber(flag: string, value: string, min = 0): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new RfError(
      'RF_USAGE',
      `${flag} takes a whole number of at least ${min}, got ${JSON.stringify(value)}`,
      {
        details: { flag, value },
      },
    );
  }
  return n;
}
