import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode, RfError } from '../errors.js';

/**
 * Where a Redis keeps its append-only files, as found in the directory given with --aof-dir:
 * Redis 7's multi-part layout (`<appenddirname>/<appendfilename>.manifest`, aof.c
 * getAofManifestFileName) or Redis 6's single `<appendfilename>`. The directory may be the
 * appendonlydir itself or the Redis `dir` that holds it.
 */
export type AofLayout =
  | { kind: 'multi-part'; dir: string; manifest: string }
  | { kind: 'single'; dir: string; file: string };

const MANIFEST_SUFFIX = '.manifest';
/** aof.c TEMP_FILE_NAME_PREFIX: Redis's own temp files, never the live ones. */
const TEMP_PREFIX = 'temp-';
const DEFAULT_DIRNAME = 'appendonlydir';
const DEFAULT_FILENAME = 'appendonly.aof';

const doctorHint = (dir: string) =>
  `check that Redis runs with appendonly yes (\`rf doctor --source <redis-url>\` explains and --fix sets it) and that --aof-dir ${dir} is its \`dir\` (CONFIG GET dir) or the appendonlydir in it`;

export async function locateAof(dir: string): Promise<AofLayout> {
  const names = await listDir(dir);
  const manifests = names.filter((n) => n.endsWith(MANIFEST_SUFFIX) && !n.startsWith(TEMP_PREFIX));
  if (manifests.length > 1) {
    throw new RfError(
      'RF_USAGE',
      `${dir} holds more than one AOF manifest: ${manifests.join(', ')}`,
      {
        details: { dir, manifests },
        hint: 'one Redis per directory: point --aof-dir at the appendonlydir of the Redis to follow',
      },
    );
  }
  if (manifests[0] !== undefined) return { kind: 'multi-part', dir, manifest: manifests[0] };
  if (names.includes(DEFAULT_DIRNAME)) {
    const inner = path.join(dir, DEFAULT_DIRNAME);
    const innerNames = await listDir(inner);
    const innerManifests = innerNames.filter(
      (n) => n.endsWith(MANIFEST_SUFFIX) && !n.startsWith(TEMP_PREFIX),
    );
    if (innerManifests.length === 1)
      return { kind: 'multi-part', dir: inner, manifest: innerManifests[0]! };
  }
  // A Redis 6 file: appendonly.aof, or the one *.aof file in the directory.
  if (names.includes(DEFAULT_FILENAME) && (await isFile(path.join(dir, DEFAULT_FILENAME)))) {
    return { kind: 'single', dir, file: DEFAULT_FILENAME };
  }
  const aofs: string[] = [];
  for (const n of names) {
    if (n.endsWith('.aof') && !n.startsWith(TEMP_PREFIX) && (await isFile(path.join(dir, n))))
      aofs.push(n);
  }
  if (aofs.length === 1) return { kind: 'single', dir, file: aofs[0]! };
  throw new RfError(
    'RF_AOF_DIR',
    `no append-only file in ${dir}: neither a *.manifest (Redis 7) nor appendonly.aof (Redis 6)`,
    {
      details: { dir, found: names.slice(0, 20) },
      hint: doctorHint(dir),
    },
  );
}

async function listDir(dir: string): Promise<string[]> {
  try {
    const st = await fs.stat(dir);
    if (!st.isDirectory()) {
      throw new RfError('RF_AOF_DIR', `${dir} is not a directory`, {
        details: { dir },
        hint: doctorHint(dir),
      });
    }
    return await fs.readdir(dir);
  } catch (err) {
    if (err instanceof RfError) throw err;
    const errno = errnoCode(err);
    const what =
      errno === 'ENOENT'
        ? 'does not exist'
        : errno === 'EACCES' || errno === 'EPERM'
          ? 'is not readable by this user'
          : `cannot be read (${errno ?? String(err)})`;
    throw new RfError('RF_AOF_DIR', `the AOF directory ${dir} ${what}`, {
      details: { dir, errno },
      hint:
        errno === 'EACCES' || errno === 'EPERM'
          ? `run rf as a user that may read ${dir} (Redis's user or its group)`
          : doctorHint(dir),
      cause: err,
    });
  }
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

/** Reads and parses nothing: the manifest path of a multi-part layout. */
export function manifestPath(layout: Extract<AofLayout, { kind: 'multi-part' }>): string {
  return path.join(layout.dir, layout.manifest);
}
