/**
 * Redis glob patterns, as KEYS, SCAN MATCH and PSUBSCRIBE read them: a port of
 * stringmatchlen_impl (redis/redis src/util.c, 7.0 with the CVE-2022-36021 nesting limit) over
 * bytes, so `rf log --key` selects exactly the keys `KEYS <pattern>` would on the source.
 *
 *   *        any run of bytes, empty included
 *   ?        any one byte
 *   [abc]    one of the bytes listed; [^abc] none of them; [a-z] a range (either order)
 *   \x       the byte x itself, inside brackets too
 *
 * The C code reads one byte past the pattern in two places (the NUL of an sds string); the
 * port treats "past the end" as a byte that matches nothing special, which is what that NUL is.
 */

const STAR = 0x2a;
const QUESTION = 0x3f;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const CARET = 0x5e;
const DASH = 0x2d;
const BACKSLASH = 0x5c;

/** Recursion depth at which Redis gives up and answers "no match" (util.c, CVE-2022-36021). */
const MAX_NESTING = 1000;

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 32 : c;
}

interface Skip {
  longer: boolean;
}

function matchAt(
  pat: Uint8Array,
  p0: number,
  str: Uint8Array,
  s0: number,
  nocase: boolean,
  skip: Skip,
  nesting: number,
): boolean {
  if (nesting > MAX_NESTING) return false;
  let p = p0;
  let s = s0;
  const pEnd = pat.length;
  const sEnd = str.length;
  while (p < pEnd && s < sEnd) {
    switch (pat[p]) {
      case STAR: {
        while (p + 1 < pEnd && pat[p + 1] === STAR) p++;
        if (p + 1 === pEnd) return true;
        while (s < sEnd) {
          if (matchAt(pat, p + 1, str, s, nocase, skip, nesting + 1)) return true;
          if (skip.longer) return false;
          s++;
        }
        // No match of the rest anywhere in the rest of the string: a longer match for an
        // earlier '*' cannot help either (util.c, skipLongerMatches).
        skip.longer = true;
        return false;
      }
      case QUESTION:
        s++;
        break;
      case OPEN: {
        p++;
        const not = pat[p] === CARET;
        if (not) p++;
        let match = false;
        const c = str[s]!;
        for (;;) {
          if (pat[p] === BACKSLASH && pEnd - p >= 2) {
            p++;
            if (pat[p] === c) match = true;
          } else if (pat[p] === CLOSE) {
            break;
          } else if (p >= pEnd) {
            // An unterminated class ends with the pattern; step back so the increment below
            // lands exactly on the end.
            p--;
            break;
          } else if (pEnd - p >= 3 && pat[p + 1] === DASH) {
            let start = pat[p]!;
            let end = pat[p + 2]!;
            let ch = c;
            if (start > end) [start, end] = [end, start];
            if (nocase) {
              start = lower(start);
              end = lower(end);
              ch = lower(ch);
            }
            p += 2;
            if (ch >= start && ch <= end) match = true;
          } else if (nocase ? lower(pat[p]!) === lower(c) : pat[p] === c) {
            match = true;
          }
          p++;
        }
        if (not) match = !match;
        if (!match) return false;
        s++;
        break;
      }
      default: {
        // An escaped byte is compared like any other; a trailing backslash is itself (util.c).
        if (pat[p] === BACKSLASH && pEnd - p >= 2) p++;
        const a = pat[p]!;
        const b = str[s]!;
        if (nocase ? lower(a) !== lower(b) : a !== b) return false;
        s++;
        break;
      }
    }
    p++;
    if (s === sEnd) {
      while (p < pEnd && pat[p] === STAR) p++;
      break;
    }
  }
  return p === pEnd && s === sEnd;
}

/** Whether `subject` matches the Redis glob `pattern` (both as bytes). */
export function globMatch(pattern: Uint8Array, subject: Uint8Array, nocase = false): boolean {
  // KEYS treats a lone '*' as "every key" before matching (db.c keysCommand), the empty key too.
  if (pattern.length === 1 && pattern[0] === STAR) return true;
  return matchAt(pattern, 0, subject, 0, nocase, { longer: false }, 0);
}

/**
 * The literal runs of a pattern: byte strings every matching subject contains, in order. A
 * segment whose bytes hold none of the longest one cannot hold a matching key, so `rf log`
 * skips it without splitting its commands.
 */
export function literalRuns(pattern: Uint8Array): Buffer[] {
  const runs: Buffer[] = [];
  let run: number[] = [];
  const flush = () => {
    if (run.length > 0) runs.push(Buffer.from(run));
    run = [];
  };
  for (let p = 0; p < pattern.length; p++) {
    const c = pattern[p]!;
    if (c === STAR || c === QUESTION) {
      flush();
    } else if (c === OPEN) {
      flush();
      // Skip the class the way the matcher reads it: up to the first unescaped ']'.
      p++;
      if (pattern[p] === CARET) p++;
      while (p < pattern.length && pattern[p] !== CLOSE) {
        if (pattern[p] === BACKSLASH && pattern.length - p >= 2) p++;
        p++;
      }
    } else if (c === BACKSLASH && pattern.length - p >= 2) {
      p++;
      run.push(pattern[p]!);
    } else {
      run.push(c);
    }
  }
  flush();
  return runs;
}

/**
 * The one key a pattern without wildcards stands for (escapes removed), or null when it has a
 * `*`, `?` or `[`: such a pattern is compared with equality, the fast path of `rf log --key`.
 */
export function literalKey(pattern: Uint8Array): Buffer | null {
  const out: number[] = [];
  for (let p = 0; p < pattern.length; p++) {
    const c = pattern[p]!;
    if (c === STAR || c === QUESTION || c === OPEN) return null;
    if (c === BACKSLASH && pattern.length - p >= 2) p++;
    out.push(pattern[p]!);
  }
  return Buffer.from(out);
}

/**
 * The bytes every subject matching the pattern starts with (escapes removed): the pattern up to
 * its first `*`, `?` or `[`. The whole pattern's literal when it has none.
 */
export function literalPrefix(pattern: Uint8Array): Buffer {
  const out: number[] = [];
  for (let p = 0; p < pattern.length; p++) {
    const c = pattern[p]!;
    if (c === STAR || c === QUESTION || c === OPEN) break;
    if (c === BACKSLASH && pattern.length - p >= 2) p++;
    out.push(pattern[p]!);
  }
  return Buffer.from(out);
}
