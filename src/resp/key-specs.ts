/**
 * The key specifications a Redis 7+ master gives for its own commands (COMMAND, key specs
 * element; redis/redis src/commands/*.json), recorded at capture so `rf log --key` and key
 * extraction know the keys of every command that master has, its modules' and newer releases'
 * (7.2–7.4: HPEXPIREAT … FIELDS, HPERSIST, …) included, not only those of rf's own table.
 *
 * Interpreted as db.c getKeysUsingKeySpecs does: a begin search (an index, or a keyword
 * searched for from `startfrom`), then a range (lastkey, keystep, limit) or a key count
 * (keynumidx and firstkey relative to where the search began, keystep).
 */
import type { ArgList } from './key-args.js';

export type BeginSearch = { index: number } | { keyword: string; startfrom: number };
export type FindKeys =
  | { lastkey: number; keystep: number; limit: number }
  | { keynumidx: number; firstkey: number; keystep: number };

export interface KeySpec {
  begin: BeginSearch;
  find: FindKeys;
}

/** By lower-cased name, subcommands as `container|sub`; null: a spec rf cannot interpret. */
export type CommandKeySpecs = Record<string, KeySpec[] | null>;

/** A RESP2 map (a flat array of name, value, …) as an object. */
function asMap(value: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!Array.isArray(value)) return out;
  for (let i = 0; i + 1 < value.length; i += 2) out.set(String(value[i]), value[i + 1]);
  return out;
}

const num = (v: unknown): number => Number(String(v));

function parseSpec(raw: unknown): KeySpec | null {
  const spec = asMap(raw);
  const bs = asMap(spec.get('begin_search'));
  const fk = asMap(spec.get('find_keys'));
  const bsSpec = asMap(bs.get('spec'));
  const fkSpec = asMap(fk.get('spec'));
  let begin: BeginSearch;
  if (String(bs.get('type')) === 'index') begin = { index: num(bsSpec.get('index')) };
  else if (String(bs.get('type')) === 'keyword')
    begin = { keyword: String(bsSpec.get('keyword')), startfrom: num(bsSpec.get('startfrom')) };
  else return null;
  let find: FindKeys;
  if (String(fk.get('type')) === 'range') {
    find = {
      lastkey: num(fkSpec.get('lastkey')),
      keystep: num(fkSpec.get('keystep')),
      limit: num(fkSpec.get('limit')),
    };
  } else if (String(fk.get('type')) === 'keynum') {
    find = {
      keynumidx: num(fkSpec.get('keynumidx')),
      firstkey: num(fkSpec.get('firstkey')),
      keystep: num(fkSpec.get('keystep')),
    };
  } else return null;
  const all = [...Object.values(begin), ...Object.values(find)].filter(
    (v) => typeof v === 'number',
  );
  return all.every((v) => Number.isInteger(v)) ? { begin, find } : null;
}

function mayWrite(raw: unknown): boolean {
  const flags = asMap(raw).get('flags');
  return Array.isArray(flags) && flags.some((f) => ['RW', 'OW', 'RM'].includes(String(f)));
}

/**
 * The write commands' key specs from a COMMAND reply (RESP2: name, arity, flags, first key,
 * last key, step, ACL categories, tips, key specs, subcommands). Read-only commands are left
 * out: they never reach the stream.
 */
export function parseCommandTable(reply: unknown): CommandKeySpecs {
  const out: CommandKeySpecs = {};
  const visit = (entry: unknown) => {
    if (!Array.isArray(entry) || entry.length < 9) return;
    const name = String(entry[0]).toLowerCase();
    const flags = Array.isArray(entry[2]) ? entry[2].map(String) : [];
    const specs = Array.isArray(entry[8]) ? entry[8] : [];
    // A key spec that may write (RW, OW, RM) counts too: EVAL and FCALL are not flagged
    // write, and a master may still propagate them verbatim.
    if (flags.includes('write') || specs.some(mayWrite)) {
      const parsed = specs.map(parseSpec);
      out[name] = parsed.every((s) => s !== null) ? (parsed as KeySpec[]) : null;
    }
    if (Array.isArray(entry[9])) for (const sub of entry[9]) visit(sub);
  };
  if (Array.isArray(reply)) for (const entry of reply) visit(entry);
  return out;
}

/** The specs for a write: its subcommand's (`xgroup|create`) when it has them, else its own. */
export function specsFor(
  table: CommandKeySpecs,
  name: string,
  args: ArgList,
): KeySpec[] | null | undefined {
  if (args.length > 1) {
    const sub = args.latin1(1).toLowerCase();
    const specs = table[`${name}|${sub}`];
    if (specs !== undefined) return specs;
  }
  return table[name];
}

/** The key argument indices of `args` by `specs`; null when the arguments do not fit them. */
export function keysBySpecs(specs: readonly KeySpec[], args: ArgList): number[] | null {
  const argc = args.length;
  const out = new Set<number>();
  for (const { begin, find } of specs) {
    let first: number;
    if ('index' in begin) first = begin.index;
    else {
      const from = begin.startfrom > 0 ? begin.startfrom : argc + begin.startfrom;
      const to = begin.startfrom > 0 ? argc - 1 : 0;
      const want = begin.keyword.toLowerCase();
      let found = -1;
      for (let i = from; i !== to; i = from <= to ? i + 1 : i - 1) {
        if (i >= argc || i < 1) break;
        if (args.latin1(i).toLowerCase() === want) {
          found = i;
          break;
        }
      }
      if (found === -1) continue; // the keyword is optional: no keys from this spec
      first = found + 1;
    }
    let last: number;
    let step: number;
    if ('lastkey' in find) {
      step = find.keystep;
      if (find.lastkey >= 0) last = first + find.lastkey;
      else if (find.limit === 0) last = argc + find.lastkey;
      else last = first + (Math.floor((argc - first) / find.limit) + find.lastkey);
    } else {
      step = find.keystep;
      const at = first + find.keynumidx;
      const count = at < argc ? Number.parseInt(args.latin1(at), 10) : Number.NaN;
      if (!Number.isInteger(count) || count < 0) return null;
      first += find.firstkey;
      last = first + (count - 1) * step;
    }
    if (step < 1) return null;
    for (let i = first; i <= last; i += step) {
      if (i >= argc) return null;
      out.add(i);
    }
  }
  return [...out].sort((a, b) => a - b);
}
