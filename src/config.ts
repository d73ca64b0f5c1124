import { readFileSync } from 'node:fs';
import type tls from 'node:tls';
import { errnoCode, RfError } from './errors.js';
import { parseRedisUrl, type RedisEndpoint } from './redis-url.js';
import { warnIfSharedSecret } from './warnings.js';

/** A file an option names (a certificate, a key, a token): RF_USAGE naming the flag if unreadable. */
export function readOptionFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new RfError('RF_USAGE', `cannot read ${flag} ${file}`, {
      details: { flag, file, errno: errnoCode(err) },
      hint: `check ${flag}: it names a file this user can read`,
      cause: err,
    });
  }
}

/** A secret kept in a file (its first line), so it stays out of argv and the environment. */
export function readSecretFile(flag: string, file: string): string {
  const text = readOptionFile(flag, file).toString('utf8');
  warnIfSharedSecret(flag, file);
  return text.split(/\r?\n/)[0] ?? '';
}

export function readPasswordFile(file: string): string {
  return readSecretFile('--password-file', file);
}

export interface ConnectionFlags {
  passwordFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** A Redis URL with the flags every command that connects shares: password file and TLS files. */
export function redisConnection(
  url: string,
  flags: ConnectionFlags,
  /** Where RF_PASSWORD is read; `{}` for a server that is not the one RF_PASSWORD is for. */
  env: NodeJS.ProcessEnv = process.env,
): { endpoint: RedisEndpoint; tlsOptions?: tls.ConnectionOptions } {
  // The file is read first: `redis://rf@host` with --password-file names the user, the file
  // its password (rf.example.yaml and the systemd unit start rf this way).
  const endpoint = parseRedisUrl(
    url,
    env,
    flags.passwordFile === undefined ? {} : { password: readPasswordFile(flags.passwordFile) },
  );
  const tlsOptions: tls.ConnectionOptions = {};
  if (flags.tlsCa) tlsOptions.ca = readOptionFile('--tls-ca', flags.tlsCa);
  if (flags.tlsCert) tlsOptions.cert = readOptionFile('--tls-cert', flags.tlsCert);
  if (flags.tlsKey) tlsOptions.key = readOptionFile('--tls-key', flags.tlsKey);
  return Object.keys(tlsOptions).length > 0 ? { endpoint, tlsOptions } : { endpoint };
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
