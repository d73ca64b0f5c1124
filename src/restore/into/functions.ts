import { RfError } from '../../errors.js';
import { type RedisClient, RedisReplyError } from '../../resp/client.js';
import type { ConflictMode } from './decide.js';
import type { IntoTarget } from './target.js';

/** A function library of the state at T: its name and its code, as FUNCTION LOAD takes it. */
export interface Library {
  name: string;
  code: Buffer;
}

export interface LibraryCopy {
  loaded: string[];
  replaced: string[];
  skipped: string[];
}

/** FUNCTION LIST WITHCODE, as [name, code] pairs (RESP2: a flat field/value array per library). */
async function libraries(client: RedisClient): Promise<Library[]> {
  const reply = (await client.call('FUNCTION', 'LIST', 'WITHCODE')) as unknown[][];
  return reply.map((fields) => {
    const field = (name: string) => fields[fields.findIndex((f) => String(f) === name) + 1];
    return { name: String(field('library_name')), code: field('library_code') as Buffer };
  });
}

export function scratchLibraries(client: RedisClient): Promise<Library[]> {
  return libraries(client);
}

/**
 * `--functions`: each library of the state at T goes to the target (every master of a
 * cluster) by FUNCTION LOAD, library by library, following --conflict: a library the target
 * lacks is loaded; one it has is refused (fail, before any key is written), left as it is
 * (skip) or replaced (replace: FUNCTION LOAD REPLACE). Unlike FUNCTION RESTORE with FLUSH, the
 * target's other libraries are never removed; unlike APPEND, one library in the way does not
 * refuse the others under skip and replace.
 */
export async function copyLibraries(
  target: IntoTarget,
  libs: readonly Library[],
  conflict: ConflictMode,
  dryRun: boolean,
): Promise<LibraryCopy> {
  const copy: LibraryCopy = { loaded: [], replaced: [], skipped: [] };
  if (libs.length === 0) return copy;
  const masters = await target.masters();
  const held = new Set<string>();
  for (const m of masters) for (const l of await libraries(m)) held.add(l.name);
  const clash = libs.filter((l) => held.has(l.name)).map((l) => l.name);
  if (conflict === 'fail' && clash.length > 0 && !dryRun) {
    throw new RfError(
      'RF_INTO_CONFLICT',
      `${target.where} already has the function librar${clash.length === 1 ? 'y' : 'ies'} ${clash.join(', ')}; nothing was written`,
      {
        details: { libraries: clash },
        hint: 'keep them with --conflict skip, replace them with --conflict replace, or leave --functions out',
      },
    );
  }
  for (const lib of libs) {
    const exists = held.has(lib.name);
    if (exists && conflict !== 'replace') {
      copy.skipped.push(lib.name);
      continue;
    }
    (exists ? copy.replaced : copy.loaded).push(lib.name);
    if (dryRun) continue;
    for (const m of masters) {
      const args = exists
        ? ['FUNCTION', 'LOAD', 'REPLACE', lib.code]
        : ['FUNCTION', 'LOAD', lib.code];
      try {
        await m.call(...args);
      } catch (err) {
        if (!(err instanceof RedisReplyError)) throw err;
        throw new RfError(
          'RF_INTO_REFUSED',
          `${target.where} refused the function library ${lib.name}: ${err.message}`,
          {
            details: { library: lib.name, reply: err.message },
            hint: 'check the library against the target (its Redis version, its engines), or leave --functions out',
          },
        );
      }
    }
  }
  return copy;
}
