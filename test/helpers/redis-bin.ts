import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Which Redis the tests run against. By default the `redis-server`, `redis-cli` and
 * `redis-check-aof` on PATH; with RF_TEST_REDIS_BIN_DIR the ones in that directory (a Redis
 * `src/` after `make`, or a Valkey one, whose tools are named `valkey-*`), so the whole suite
 * can run against any build.
 */
export const BIN_DIR_VARIABLE = 'RF_TEST_REDIS_BIN_DIR';

export type RedisTool = 'server' | 'cli' | 'check-aof' | 'check-rdb' | 'benchmark';

/** The executable to spawn for `tool`: a path in RF_TEST_REDIS_BIN_DIR, or a name on PATH. */
export function redisBin(tool: RedisTool): string {
  const dir = process.env[BIN_DIR_VARIABLE];
  if (dir === undefined || dir === '') return `redis-${tool}`;
  for (const name of [`redis-${tool}`, `valkey-${tool}`]) {
    const file = join(dir, name);
    if (existsSync(file)) return file;
  }
  throw new Error(
    `${BIN_DIR_VARIABLE}=${dir} holds neither redis-${tool} nor valkey-${tool}: point it at the directory of a built redis-server (its src/ after make)`,
  );
}

export interface ServerBuild {
  /** Valkey answers Redis's protocol under its own name and numbering. */
  flavor: 'redis' | 'valkey';
  /** e.g. '7.0.15', or '8.0.1' for Valkey 8.0.1. */
  version: string;
}

let cached: ServerBuild | undefined;

/** The redis-server the tests use; throws saying how to get one when it is missing. */
export function serverBuild(): ServerBuild {
  if (cached !== undefined) return cached;
  const bin = redisBin('server');
  const result = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) {
    throw new Error(
      `${bin} cannot be run: the tests need a real redis-server. Install it with \`apt-get install redis-server\`, or set ${BIN_DIR_VARIABLE} to the directory of a build.`,
      { cause: result.error },
    );
  }
  const match = /v=(\d+\.\d+\.\d+)/.exec(result.stdout);
  if (match?.[1] === undefined) {
    throw new Error(`cannot read the version from \`${bin} --version\`: ${result.stdout}`);
  }
  cached = { flavor: /^valkey/i.test(result.stdout) ? 'valkey' : 'redis', version: match[1] };
  return cached;
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

/**
 * Server features some tests need, with the first release that has them. Valkey forked from
 * Redis 7.2.4, so every Redis 7.0 feature is in each Valkey; hash-field expiry is Redis 7.4 and
 * Valkey 9.0.
 */
const FEATURES = {
  /** appendonlydir with a manifest (Redis 7.0 aof.c); 6.x writes one appendonly.aof. */
  'multi-part AOF': { redis: '7.0.0', valkey: '7.2.4' },
  /** aof-timestamp-enabled and its #TS annotations (Redis 7.0). */
  'AOF timestamps': { redis: '7.0.0', valkey: '7.2.4' },
  /** FUNCTION LOAD / FCALL (Redis 7.0). */
  functions: { redis: '7.0.0', valkey: '7.2.4' },
  /** The enable-debug-command setting; 6.x always allows DEBUG and refuses the option. */
  'enable-debug-command': { redis: '7.0.0', valkey: '7.2.4' },
  /** ACL DRYRUN, which rf doctor uses to test the rf user's rights (Redis 7.0). */
  'ACL DRYRUN': { redis: '7.0.0', valkey: '7.2.4' },
  /** PEXPIRETIME, which rf restore --into reads on its scratch server (Redis 7.0). */
  PEXPIRETIME: { redis: '7.0.0', valkey: '7.2.4' },
  /** Expiries propagated as absolute times, SET … PXAT and PEXPIREAT (Redis 7.0). */
  'absolute expiries in the stream': { redis: '7.0.0', valkey: '7.2.4' },
  /** Key specs in COMMAND's reply (Redis 7.0), which rf listen records for rf log --key. */
  'COMMAND key specs': { redis: '7.0.0', valkey: '7.2.4' },
  /** Loading RDB 10, as the scripted master's Redis 7.0 snapshots are (Redis 6 reads 9). */
  'RDB 10': { redis: '7.0.0', valkey: '7.2.4' },
  /** REPLCONF rdb-only (Redis 7.0). */
  'REPLCONF rdb-only': { redis: '7.0.0', valkey: '7.2.4' },
  /** HEXPIRE, HPEXPIREAT … FIELDS, and RDB types 22-25 (Redis 7.4). */
  'hash-field expiry': { redis: '7.4.0', valkey: '9.0.0' },
} as const;

export type ServerFeature = keyof typeof FEATURES;

export function hasFeature(feature: ServerFeature, build: ServerBuild = serverBuild()): boolean {
  return compareVersions(build.version, FEATURES[feature][build.flavor]) >= 0;
}

/**
 * For `it.skipIf(lacks('functions'))`: true when the server under test lacks the feature. The
 * test's name should say what it needs; the reason is printed once per feature, so a skip is
 * never silent.
 */
export function lacks(feature: ServerFeature): boolean {
  if (hasFeature(feature)) return false;
  const { flavor, version } = serverBuild();
  if (!announced.has(feature)) {
    announced.add(feature);
    process.stderr.write(
      `skipping what needs ${feature}: ${flavor} ${version} has none (${flavor} ${FEATURES[feature][flavor]} or later does)\n`,
    );
  }
  return true;
}

const announced = new Set<ServerFeature>();

/** `--aof-timestamp-enabled yes` where the server has it (Redis 6 refuses the option). */
export function aofTimestampArgs(): string[] {
  return hasFeature('AOF timestamps') ? ['--aof-timestamp-enabled', 'yes'] : [];
}
