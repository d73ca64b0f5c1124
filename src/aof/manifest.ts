import { RfError } from '../errors.js';

/**
 * The Redis 7 multi-part AOF manifest (aof.c, "AOF Manifest file implementation"): one line per
 * file, `file <name> seq <n> type b|h|i`, written to a temp file and renamed into place, so a
 * reader never sees half of one. The parser accepts what aofLoadManifestFromFile accepts and
 * refuses what it refuses, so rf never follows a manifest Redis itself would not load.
 */

/** `b` base, `h` history (to be deleted), `i` incr; aof.c AOF_FILE_TYPE_*. */
export type ManifestFileType = 'b' | 'h' | 'i';

export interface ManifestEntry {
  name: string;
  seq: number;
  type: ManifestFileType;
}

export interface Manifest {
  /** At most one base; absent before the first rewrite of a Redis that started with data loaded. */
  base: ManifestEntry | null;
  history: ManifestEntry[];
  /** In seq order (the parser checks they increase, as Redis does). */
  incrs: ManifestEntry[];
}

/** aof.c MANIFEST_MAX_LINE: a longer line is refused. */
const MAX_LINE = 1024;

/**
 * Parses a manifest's bytes. `where` names it in errors (its path). Malformed input is
 * RF_AOF_MANIFEST, with the line number and Redis's own wording of the problem.
 */
export function parseManifest(bytes: Buffer, where: string): Manifest {
  const manifest: Manifest = { base: null, history: [], incrs: [] };
  let lineNo = 0;
  let maxIncrSeq = 0;
  let at = 0;
  if (bytes.length === 0) throw malformed(where, 0, '', 'Found an empty AOF manifest');
  while (at < bytes.length) {
    const lf = bytes.indexOf(0x0a, at);
    const end = lf === -1 ? bytes.length : lf + 1;
    const raw = bytes.subarray(at, end);
    at = end;
    lineNo++;
    // Comments are skipped before the length check, as aofLoadManifestFromFile does.
    if (raw[0] === 0x23) continue;
    const text = raw.toString('latin1');
    if (lf === -1 || raw.length > MAX_LINE) {
      throw malformed(where, lineNo, text, 'The AOF manifest file contains too long line');
    }
    const line = text.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
    if (line === '') throw malformed(where, lineNo, text, 'Invalid AOF manifest file format');
    const argv = splitArgs(Buffer.from(line, 'latin1'));
    // `argc < 6` is Redis's forward-compatibility rule: more key/value pairs may follow.
    if (argv === null || argv.length < 6 || argv.length % 2 !== 0) {
      throw malformed(where, lineNo, line, 'Invalid AOF manifest file format');
    }
    let name: string | null = null;
    let seq = 0;
    let type = '';
    for (let i = 0; i < argv.length; i += 2) {
      const key = argv[i]!.toString('latin1').toLowerCase();
      const value = argv[i + 1]!;
      if (key === 'file') {
        name = value.toString('utf8');
        if (name.includes('/')) {
          throw malformed(where, lineNo, line, "File can't be a path, just a filename");
        }
      } else if (key === 'seq') {
        seq = atoll(value.toString('latin1'));
      } else if (key === 'type') {
        type = value.toString('latin1').slice(0, 1);
      }
      // Unknown keys are tolerated: a newer Redis may add some.
    }
    if (name === null || name === '' || seq === 0 || type === '') {
      throw malformed(where, lineNo, line, 'Invalid AOF manifest file format');
    }
    const entry = (t: ManifestFileType): ManifestEntry => ({ name: name!, seq, type: t });
    if (type === 'b') {
      if (manifest.base !== null) {
        throw malformed(where, lineNo, line, 'Found duplicate base file information');
      }
      manifest.base = entry('b');
    } else if (type === 'h') {
      manifest.history.push(entry('h'));
    } else if (type === 'i') {
      if (seq <= maxIncrSeq) {
        throw malformed(where, lineNo, line, 'Found a non-monotonic sequence number');
      }
      manifest.incrs.push(entry('i'));
      maxIncrSeq = seq;
    } else {
      throw malformed(where, lineNo, line, 'Unknown AOF file type');
    }
  }
  if (lineNo === 0) throw malformed(where, 0, '', 'Found an empty AOF manifest');
  return manifest;
}

/**
 * sds.c sdssplitargs: space-separated words, with "double quotes" (escapes \n \r \t \b \a \xHH
 * and \<char>) and 'single quotes' (only \' escapes). A closing quote must be followed by a space
 * or the end. Returns null where Redis returns NULL (unbalanced quotes). Works on bytes: a file
 * name is bytes to Redis.
 */
export function splitArgs(line: Buffer): Buffer[] | null {
  const out: Buffer[] = [];
  let p = 0;
  const n = line.length;
  const isSpace = (c: number | undefined) =>
    c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x0b || c === 0x0c;
  for (;;) {
    while (p < n && isSpace(line[p])) p++;
    if (p >= n) return out;
    const current: number[] = [];
    let inDouble = false;
    let inSingle = false;
    let done = false;
    while (!done) {
      const c = line[p];
      if (inDouble) {
        if (c === undefined) return null;
        if (c === 0x5c && line[p + 1] === 0x78 && isHex(line[p + 2]) && isHex(line[p + 3])) {
          current.push(Number.parseInt(String.fromCharCode(line[p + 2]!, line[p + 3]!), 16));
          p += 3;
        } else if (c === 0x5c && p + 1 < n) {
          p++;
          const e = line[p]!;
          const map: Record<number, number> = {
            110: 0x0a,
            114: 0x0d,
            116: 0x09,
            98: 0x08,
            97: 0x07,
          };
          current.push(map[e] ?? e);
        } else if (c === 0x22) {
          if (p + 1 < n && !isSpace(line[p + 1])) return null;
          done = true;
        } else {
          current.push(c);
        }
      } else if (inSingle) {
        if (c === undefined) return null;
        if (c === 0x5c && line[p + 1] === 0x27) {
          p++;
          current.push(0x27);
        } else if (c === 0x27) {
          if (p + 1 < n && !isSpace(line[p + 1])) return null;
          done = true;
        } else {
          current.push(c);
        }
      } else if (c === undefined || isSpace(c)) {
        done = true;
      } else if (c === 0x22) {
        inDouble = true;
      } else if (c === 0x27) {
        inSingle = true;
      } else {
        current.push(c);
      }
      if (p < n) p++;
    }
    out.push(Buffer.from(current));
  }
}

function isHex(c: number | undefined): boolean {
  return (
    c !== undefined &&
    ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66))
  );
}

/** C atoll: leading digits, anything after ignored, 0 when there are none. */
function atoll(text: string): number {
  const m = /^\s*([+-]?\d+)/.exec(text);
  return m ? Number(m[1]) : 0;
}

function malformed(where: string, line: number, text: string, reason: string): RfError {
  return new RfError('RF_AOF_MANIFEST', `the AOF manifest ${where} is malformed: ${reason}`, {
    details: { manifest: where, line, text: text.slice(0, 200) },
    hint: 'Redis would refuse to load this manifest too; check it with `redis-check-aof <manifest>` before rf follows it',
  });
}
