import { FrameScanner } from '../../resp/frames.js';
import { keyArgs } from '../../resp/key-args.js';

/**
 * The keys the replay after the base names, by db: every other key of the state at T is as the
 * base holds it. `unknown` when that cannot be said of some command, or when the keys are too
 * many to hold: then the whole state is rebuilt.
 */
export type Touched =
  | { kind: 'keys'; dbs: Map<number, Set<string>>; count: number }
  | { kind: 'unknown'; why: string };

/** Limits on what is held in memory, past which the whole state is rebuilt instead. */
export const TOUCHED_MAX_KEYS = 200_000;
const TOUCHED_MAX_BYTES = 16 * 1024 * 1024;

/** No key, and no key changes. */
const KEYLESS = new Set(['multi', 'exec', 'ping', 'publish', 'spublish', 'function', 'script']);

/**
 * Commands that change or read keys their arguments do not name: scripts may use keys they
 * were not given (a Redis 6 master may replicate EVAL itself), SORT … BY/GET reads keys by
 * pattern. FLUSHDB, FLUSHALL and SWAPDB change every key (keyArgs: every-key).
 */
const UNKNOWABLE = new Set([
  'eval',
  'evalsha',
  'eval_ro',
  'evalsha_ro',
  'fcall',
  'fcall_ro',
  'sort',
  'sort_ro',
]);

/** A key as the sets hold it: latin1 keeps every byte. */
export function touchedName(key: Buffer): string {
  return key.toString('latin1');
}

export function isTouched(touched: Touched, db: number, key: Buffer): boolean {
  if (touched.kind === 'unknown') return true;
  const names = touched.dbs.get(db);
  return names !== undefined && names.size > 0 && names.has(touchedName(key));
}

/** Reads the replay for the keys its commands name; stops at the first it cannot know. */
export async function touchedKeys(commands: AsyncIterable<Buffer>): Promise<Touched> {
  const scanner = new FrameScanner();
  const dbs = new Map<number, Set<string>>();
  let why: string | null = null;
  let db = 0;
  let count = 0;
  let bytes = 0;
  const add = (at: number, key: Buffer | undefined) => {
    if (key === undefined || why !== null) return;
    let names = dbs.get(at);
    if (names === undefined) {
      names = new Set();
      dbs.set(at, names);
    }
    const name = touchedName(key);
    if (names.has(name)) return;
    names.add(name);
    count++;
    bytes += key.length;
    if (count > TOUCHED_MAX_KEYS || bytes > TOUCHED_MAX_BYTES) {
      why = `the replay names more than ${count - 1} keys`;
    }
  };
  replay: for await (const chunk of commands) {
    for (const frame of scanner.push(chunk)) {
      if (frame.kind !== 'command' || frame.args.length === 0) continue;
      const args = frame.args;
      const name = args[0]!.toString('latin1').toLowerCase();
      if (name === 'select') {
        db = Number(args[1]?.toString('latin1'));
        continue;
      }
      if (KEYLESS.has(name)) continue;
      const keys = UNKNOWABLE.has(name) ? null : keyArgs(name, args);
      if (keys?.kind !== 'keys') {
        why = `the replay holds ${name.toUpperCase()}, whose keys are not all named`;
        break replay;
      }
      for (const i of keys.indices) add(db, args[i]);
      // The key also lands in another db: MOVE key db, COPY src dst DB db.
      if (name === 'move') add(Number(args[2]?.toString('latin1')), args[1]);
      if (name === 'copy') {
        for (let i = 3; i + 1 < args.length; i++) {
          if (args[i]!.toString('latin1').toLowerCase() === 'db') {
            add(Number(args[i + 1]!.toString('latin1')), args[2]);
          }
        }
      }
      if (why !== null) break replay;
    }
  }
  return why === null ? { kind: 'keys', dbs, count } : { kind: 'unknown', why };
}
