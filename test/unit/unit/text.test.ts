import { describe, expect, it } from 'vitest';
import {
  excerpt,
  goFields,
  goQuote,
  goQuoteRune,
  invalidUtf8Offset,
  loneSurrogateIndex,
  trimGoSpace,
} from '../../../src/unit/text.js';

describe('Go-compatible string helpers', () => {
  it.each([
    ['abc', '"abc"'],
    ['', '""'],
    ['a"b', '"a\\"b"'],
    ['a\\b', '"a\\\\b"'],
    ["it's", '"it\'s"'],
    ['\n\t\r\x07\b\f\v', '"\\n\\t\\r\\a\\b\\f\\v"'],
    ['\0\x1b\x7f', '"\\x00\\x1b\\x7f"'],
    ['é☃🚀', '"é☃🚀"'],
    ['\u0085\u00a0\u200b', '"\\u0085\\u00a0\\u200b"'],
    ['\u{e0001}', '"\\U000e0001"'],
  ])('goQuote(%j) = %s', (s, q) => {
    expect(goQuote(s)).toBe(q);
  });

  it.each([
    ['!', "'!'"],
    ["'", "'\\''"],
    ['"', "'\"'"],
    ['\\', "'\\\\'"],
    ['\0', "'\\x00'"],
    ['\n', "'\\n'"],
    ['€', "'€'"],
  ])('goQuoteRune(%j) = %s', (ch, q) => {
    expect(goQuoteRune(ch)).toBe(q);
  });

  it('trimGoSpace trims unicode.IsSpace only', () => {
    expect(trimGoSpace(' \t\v\f\r\n\u0085\u00a0\u3000x y\u2028 ')).toBe('x y');
    expect(trimGoSpace('\ufeffx\u200b')).toBe('\ufeffx\u200b'); // not spaces for Go
  });

  it('goFields splits on runs of unicode spaces', () => {
    expect(goFields('  a b\t\tc\u00a0d  ')).toEqual(['a', 'b', 'c', 'd']);
    expect(goFields('   ')).toEqual([]);
  });

  it('excerpt quotes and truncates', () => {
    expect(excerpt('short')).toBe('"short"');
    expect(excerpt('☃'.repeat(50), 3)).toBe('"☃☃☃"…');
  });

  it.each([
    [[0x61, 0x62], -1],
    [[0xe2, 0x98, 0x83], -1],
    [[0xf0, 0x9f, 0x9a, 0x80], -1],
    [[0x61, 0x80], 1],
    [[0xc0, 0x80], 0],
    [[0xc1, 0xbf], 0],
    [[0xe0, 0x80, 0x80], 0],
    [[0xed, 0xa0, 0x80], 0],
    [[0xf0, 0x80, 0x80, 0x80], 0],
    [[0xf4, 0x90, 0x80, 0x80], 0],
    [[0xf5, 0x80, 0x80, 0x80], 0],
    [[0x61, 0xe2, 0x98], 1],
    [[0x61, 0xe2, 0x41, 0x80], 1],
  ])('invalidUtf8Offset(%j) = %d', (bytes, offset) => {
    expect(invalidUtf8Offset(new Uint8Array(bytes))).toBe(offset);
  });

  it('loneSurrogateIndex', () => {
    expect(loneSurrogateIndex('a🚀b')).toBe(-1);
    expect(loneSurrogateIndex('ab\ud83d')).toBe(2);
    expect(loneSurrogateIndex('\ude80x')).toBe(0);
  });
});
