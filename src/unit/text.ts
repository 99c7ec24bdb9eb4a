/**
 * Small string helpers shared by the unit modules. They reproduce the Go standard-library behaviour
 * fleet relies on (`unicode.IsSpace`, `strings.TrimSpace`, `strings.Fields`, `%q` quoting), so that
 * values, hashes and error messages come out the way fleet prints them. Pure functions, no I/O.
 */

/** Go's `unicode.IsSpace` for one UTF-16 code unit: \t \n \v \f \r space, U+0085, U+00A0, Z spaces. */
function isGoSpaceCode(c: number): boolean {
  if (c <= 0xa0) return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0x85 || c === 0xa0;
  return (
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

/** True when `ch` (one character) is whitespace for Go's `unicode.IsSpace`. */
export function isGoSpace(ch: string): boolean {
  return ch.length === 1 && isGoSpaceCode(ch.charCodeAt(0));
}

/** Go `strings.TrimLeft(s, unicode.IsSpace)`. */
export function trimLeftGoSpace(s: string): string {
  let i = 0;
  while (i < s.length && isGoSpaceCode(s.charCodeAt(i))) i++;
  return i === 0 ? s : s.slice(i);
}

/** Go `strings.TrimRight(s, unicode.IsSpace)`. */
export function trimRightGoSpace(s: string): string {
  let e = s.length;
  while (e > 0 && isGoSpaceCode(s.charCodeAt(e - 1))) e--;
  return e === s.length ? s : s.slice(0, e);
}

/** Go `strings.TrimSpace`. */
export function trimGoSpace(s: string): string {
  return trimRightGoSpace(trimLeftGoSpace(s));
}

/** Go `strings.Fields`: split on runs of `unicode.IsSpace`, no empty fields. */
export function goFields(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (const ch of s) {
    if (isGoSpace(ch)) {
      if (cur !== '') out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (cur !== '') out.push(cur);
  return out;
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;
const SHORT_ESCAPES: Readonly<Record<number, string>> = {
  0x07: '\\a',
  0x08: '\\b',
  0x0c: '\\f',
  0x0a: '\\n',
  0x0d: '\\r',
  0x09: '\\t',
  0x0b: '\\v',
};

function escapeCodePoint(cp: number, quote: string): string {
  const ch = String.fromCodePoint(cp);
  if (ch === quote || ch === '\\') return '\\' + ch;
  if (cp === 0x20 || (cp > 0x20 && cp < 0x7f)) return ch;
  if (cp >= 0x80 && !(cp >= 0xd800 && cp <= 0xdfff) && PRINTABLE.test(ch)) return ch;
  const short = SHORT_ESCAPES[cp];
  if (short !== undefined) return short;
  if (cp < 0x80) return '\\x' + cp.toString(16).padStart(2, '0');
  if (cp < 0x10000) return '\\u' + cp.toString(16).padStart(4, '0');
  return '\\U' + cp.toString(16).padStart(8, '0');
}

/** Go `fmt.Sprintf("%q", s)` for a string: double-quoted with Go escapes. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) out += escapeCodePoint(ch.codePointAt(0) ?? 0, '"');
  return out + '"';
}

/** Go `fmt.Sprintf("%q", r)` for a rune: single-quoted with Go escapes. */
export function goQuoteRune(ch: string): string {
  return "'" + escapeCodePoint(ch.codePointAt(0) ?? 0, "'") + "'";
}

/** A short, quoted excerpt of `s` for error messages (at most `max` code points, then `…`). */
export function excerpt(s: string, max = 40): string {
  const cps = Array.from(s);
  return cps.length <= max ? goQuote(s) : goQuote(cps.slice(0, max).join('')) + '…';
}

/** UTF-8 byte length of a well-formed string. */
export function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/**
 * Offset of the first byte that starts an invalid UTF-8 sequence (overlong forms, surrogates,
 * code points above U+10FFFF and truncated sequences all count), or -1 when `b` is valid.
 */
export function invalidUtf8Offset(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i] ?? 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) n = 2;
    else if (c >= 0xf0 && c <= 0xf4) n = 3;
    else return i;
    let lo = 0x80;
    let hi = 0xbf;
    if (c === 0xe0) lo = 0xa0;
    else if (c === 0xed) hi = 0x9f;
    else if (c === 0xf0) lo = 0x90;
    else if (c === 0xf4) hi = 0x8f;
    const c1 = b[i + 1];
    if (c1 === undefined || c1 < lo || c1 > hi) return i;
    for (let k = 2; k <= n; k++) {
      const ck = b[i + k];
      if (ck === undefined || ck < 0x80 || ck > 0xbf) return i;
    }
    i += n + 1;
  }
  return -1;
}

/** Index (UTF-16) of the first unpaired surrogate in `s`, or -1 when `s` is well-formed. */
export function loneSurrogateIndex(s: string): number {
  const m = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.exec(s);
  return m ? m.index : -1;
}
