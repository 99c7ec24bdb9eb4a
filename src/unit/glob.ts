/**
 * Go `path.Match` (the glob dialect fleet uses for `Conflicts=` and `Replaces=`), ported
 * algorithm-for-algorithm so the scheduler reaches the same verdicts fleet did:
 *
 *   pattern     = { term }
 *   term        = '*'         any sequence of non-'/' characters
 *               | '?'         any single non-'/' character
 *               | '[' [ '^' ] { range } ']'   character class (non-empty; may match '/')
 *               | c           the character c (c != '*', '?', '\\', '[')
 *               | '\\' c      the character c
 *   range       = c | c '-' c   (c != '\\', '-', ']' unless escaped with '\\')
 *
 * The match must cover the whole name. Like Go, a star is matched greedily chunk by chunk (so
 * `*[a/]*c` does not match `a/c`, exactly as in Go). Differences from Go: the matcher works on
 * Unicode code points where Go steps over bytes when skipping for a star; for ASCII names
 * (every valid unit name) the results are identical. A malformed pattern never matches
 * (`globMatch` returns false), which is how fleet treats `path.ErrBadPattern`.
 */

const STAR = 0x2a;
const QUESTION = 0x3f;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const BACKSLASH = 0x5c;
const CARET = 0x5e;
const DASH = 0x2d;
const SLASH = 0x2f;

const NO_MATCH = -1;
const BAD_PATTERN = -2;

type CodePoints = readonly number[];

function codePoints(s: string): number[] {
  return Array.from(s, (c) => c.codePointAt(0) ?? 0);
}

/** Go `scanChunk`: leading stars, then the chunk up to the next star outside a class. */
function scanChunk(p: CodePoints, from: number): { star: boolean; start: number; end: number } {
  let i = from;
  let star = false;
  while (i < p.length && p[i] === STAR) {
    i++;
    star = true;
  }
  const start = i;
  let inRange = false;
  for (; i < p.length; i++) {
    const c = p[i];
    if (c === BACKSLASH) {
      if (i + 1 < p.length) i++;
    } else if (c === LBRACKET) {
      inRange = true;
    } else if (c === RBRACKET) {
      inRange = false;
    } else if (c === STAR && !inRange) {
      break;
    }
  }
  return { star, start, end: i };
}

/** Go `getEsc`: one (possibly escaped) class character; undefined on a malformed class. */
function getEsc(p: CodePoints, c: number, end: number): { r: number; next: number } | undefined {
  if (c >= end || p[c] === DASH || p[c] === RBRACKET) return undefined;
  if (p[c] === BACKSLASH) {
    c++;
    if (c >= end) return undefined;
  }
  const r = p[c] ?? 0;
  c++;
  if (c >= end) return undefined;
  return { r, next: c };
}

/**
 * Go `matchChunk`: match chunk p[c..end) at the start of s[i..]. Returns the index in s after the
 * match, NO_MATCH, or BAD_PATTERN. The whole chunk is always parsed, so syntax errors surface
 * even when the match already failed (as in current Go).
 */
function matchChunk(p: CodePoints, c: number, end: number, s: CodePoints, i: number): number {
  let failed = false;
  while (c < end) {
    if (!failed && i >= s.length) failed = true;
    const ch = p[c];
    if (ch === LBRACKET) {
      let r = -1;
      if (!failed) r = s[i++] ?? -1;
      c++;
      let negated = false;
      if (c < end && p[c] === CARET) {
        negated = true;
        c++;
      }
      let match = false;
      let nrange = 0;
      for (;;) {
        if (c < end && p[c] === RBRACKET && nrange > 0) {
          c++;
          break;
        }
        const lo = getEsc(p, c, end);
        if (!lo) return BAD_PATTERN;
        c = lo.next;
        let hi = lo.r;
        if (p[c] === DASH) {
          const h = getEsc(p, c + 1, end);
          if (!h) return BAD_PATTERN;
          c = h.next;
          hi = h.r;
        }
        if (lo.r <= r && r <= hi) match = true;
        nrange++;
      }
      if (match === negated) failed = true;
    } else if (ch === QUESTION) {
      if (!failed) {
        if (s[i] === SLASH) failed = true;
        i++;
      }
      c++;
    } else {
      if (ch === BACKSLASH) {
        c++;
        if (c >= end) return BAD_PATTERN;
      }
      if (!failed) {
        if (p[c] !== s[i]) failed = true;
        i++;
      }
      c++;
    }
  }
  return failed ? NO_MATCH : i;
}

/** True when `pattern` is syntactically valid for Go `path.Match`. */
export function isValidGlob(pattern: string): boolean {
  const p = codePoints(pattern);
  let pi = 0;
  while (pi < p.length) {
    const { start, end } = scanChunk(p, pi);
    if (matchChunk(p, start, end, [], 0) === BAD_PATTERN) return false;
    pi = end;
  }
  return true;
}

/**
 * Go `path.Match(pattern, name)`: true when the whole `name` matches `pattern`. An invalid
 * pattern returns false (fleet ignores the error and counts it as no match).
 */
export function globMatch(pattern: string, name: string): boolean {
  if (!isValidGlob(pattern)) return false;
  const p = codePoints(pattern);
  const s = codePoints(name);
  let pi = 0;
  let si = 0;
  pattern: while (pi < p.length) {
    const { star, start, end } = scanChunk(p, pi);
    pi = end;
    if (star && start === end) {
      // A trailing star matches the rest of the name unless it holds a '/'.
      return !s.slice(si).includes(SLASH);
    }
    const t = matchChunk(p, start, end, s, si);
    // On the last chunk the name must be exhausted, otherwise a star may still match more.
    if (t >= 0 && (t === s.length || pi < p.length)) {
      si = t;
      continue;
    }
    if (star) {
      for (let i = si; i < s.length && s[i] !== SLASH; i++) {
        const t2 = matchChunk(p, start, end, s, i + 1);
        if (t2 >= 0) {
          if (pi === p.length && t2 < s.length) continue;
          si = t2;
          continue pattern;
        }
      }
    }
    return false;
  }
  return si === s.length;
}
