import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../logger.js';
import { type RdbSubset, writeRdbSubset } from '../../rdb/subset.js';
import type { KeySource } from './read.js';
import { isTouched, type Touched, touchedKeys } from './touched.js';

/** The state at T read from two places: the base for what the replay left alone, the scratch for the rest. */
export interface DirectBase {
  kind: 'direct';
  /** The base file, whose untouched keys are read straight from it. */
  file: string;
  touched: Touched & { kind: 'keys' };
  subset: RdbSubset;
  /** What the scratch server loads instead of the whole base: the touched keys only. */
  scratchBase: { bytes: number; chunks: AsyncIterable<Buffer> };
}

export interface WholeState {
  kind: 'whole';
  why: string;
}

/** The base as a source of keys (those the replay left alone), and how many of them there are. */
export function baseKeys(direct: DirectBase | WholeState): {
  sources: KeySource[];
  dbs: number[];
  count: number;
} {
  if (direct.kind === 'whole') return { sources: [], dbs: [], count: 0 };
  const { file, touched, subset } = direct;
  let count = -subset.kept;
  for (const n of subset.keys.values()) count += n;
  const skip = (db: number, key: Buffer) => isTouched(touched, db, key);
  return { sources: [{ file, frozen: false, skip }], dbs: [...subset.keys.keys()], count };
}

/**
 * When every key the replay names is known (touched.ts), the scratch server needs only those
 * keys of the base: each command then finds every key it reads or writes as at its time, so
 * the scratch holds them as at T, and every other key of the state at T is the base's. A
 * MULTI/EXEC is replayed whole, as all its keys are among them. `whole`: the whole state is
 * rebuilt in the scratch (a base that is not an RDB file, or a replay whose keys cannot all
 * be known), and why.
 */
export async function directBase(
  options: { baseFile?: string | null; keyPass?: () => AsyncIterable<Buffer>; log: Logger },
  scratchDir: string,
): Promise<DirectBase | WholeState> {
  const { baseFile = null, keyPass, log } = options;
  if (baseFile === null || keyPass === undefined) {
    return { kind: 'whole', why: 'the base is not an RDB file' };
  }
  const touched = await touchedKeys(keyPass());
  if (touched.kind === 'unknown') {
    log.debug({ why: touched.why }, 'rebuilding the whole state at T in the scratch server');
    return { kind: 'whole', why: touched.why };
  }
  const file = path.join(scratchDir, 'touched.rdb');
  const subset = await writeRdbSubset(baseFile, file, (db, key) => isTouched(touched, db, key));
  log.debug({ touched: touched.count, kept: subset.kept }, 'scratch server gets the touched keys');
  return {
    kind: 'direct',
    file: baseFile,
    touched,
    subset,
    scratchBase: {
      bytes: subset.bytes,
      chunks: createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>,
    },
  };
}
