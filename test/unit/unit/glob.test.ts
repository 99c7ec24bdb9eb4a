import { describe, expect, it } from 'vitest';
import { globMatch, isValidGlob } from '../../../src/unit/index.js';

// Go's own table (src/path/match_test.go): [pattern, name, matched, valid pattern]
const goTable: [string, string, boolean, boolean][] = [
  ['abc', 'abc', true, true],
  ['*', 'abc', true, true],
  ['*c', 'abc', true, true],
  ['a*', 'a', true, true],
  ['a*', 'abc', true, true],
  ['a*', 'ab/c', false, true],
  ['a*/b', 'abc/b', true, true],
  ['a*/b', 'a/c/b', false, true],
  ['a*b*c*d*e*/f', 'axbxcxdxe/f', true, true],
  ['a*b*c*d*e*/f', 'axbxcxdxexxx/f', true, true],
  ['a*b*c*d*e*/f', 'axbxcxdxe/xxx/f', false, true],
  ['a*b*c*d*e*/f', 'axbxcxdxexxx/fff', false, true],
  ['a*b?c*x', 'abxbbxdbxebxczzx', true, true],
  ['a*b?c*x', 'abxbbxdbxebxczzy', false, true],
  ['ab[c]', 'abc', true, true],
  ['ab[b-d]', 'abc', true, true],
  ['ab[e-g]', 'abc', false, true],
  ['ab[^c]', 'abc', false, true],
  ['ab[^b-d]', 'abc', false, true],
  ['ab[^e-g]', 'abc', true, true],
  ['a\\*b', 'a*b', true, true],
  ['a\\*b', 'ab', false, true],
  ['a?b', 'a☺b', true, true],
  ['a[^a]b', 'a☺b', true, true],
  ['a???b', 'a☺b', false, true],
  ['a[^a][^a][^a]b', 'a☺b', false, true],
  ['[a-ζ]*', 'α', true, true],
  ['*[a-ζ]', 'A', false, true],
  ['a?b', 'a/b', false, true],
  ['a*b', 'a/b', false, true],
  ['[\\]a]', ']', true, true],
  ['[\\-]', '-', true, true],
  ['[x\\-]', 'x', true, true],
  ['[x\\-]', '-', true, true],
  ['[x\\-]', 'z', false, true],
  ['[\\-x]', 'x', true, true],
  ['[\\-x]', '-', true, true],
  ['[\\-x]', 'a', false, true],
  ['[]a]', ']', false, false],
  ['[-]', '-', false, false],
  ['[x-]', 'x', false, false],
  ['[x-]', '-', false, false],
  ['[x-]', 'z', false, false],
  ['[-x]', 'x', false, false],
  ['[-x]', '-', false, false],
  ['[-x]', 'a', false, false],
  ['\\', 'a', false, false],
  ['[a-b-c]', 'a', false, false],
  ['[', 'a', false, false],
  ['[^', 'a', false, false],
  ['[^bc', 'a', false, false],
  ['a[', 'a', false, false],
  ['a[', 'ab', false, false],
  ['a[', 'x', false, false],
  ['a/b[', 'x', false, false],
  ['*x', 'xxx', true, true],
];

// Unit-name shaped cases, as Conflicts=/Replaces= use them.
const unitTable: [string, string, boolean, boolean][] = [
  ['apache@*.service', 'apache@1.service', true, true],
  ['apache@*.service', 'apache@.service', true, true],
  ['apache@*.service', 'apache.service', false, true],
  ['*.service', 'foo.socket', false, true],
  ['web?.service', 'web1.service', true, true],
  ['web?.service', 'web12.service', false, true],
  ['web[0-9].service', 'web7.service', true, true],
  ['web[0-9].service', 'webx.service', false, true],
  ['web[^0-9].service', 'webx.service', true, true],
  ['web[^0-9].service', 'web7.service', false, true],
  ['web[!0-9].service', 'web5.service', true, true], // '!' is not negation in Go: literal '!' or 0-9
  ['web[!0-9].service', 'web!.service', true, true],
  ['[a-z]*', 'Foo.service', false, true],
  ['[A-Za-z]*', 'Foo.service', true, true],
  ['\\[x\\].service', '[x].service', true, true],
  ['a\\?b', 'a?b', true, true],
  ['a\\?b', 'axb', false, true],
  ['[*]', '*', true, true],
  ['[*]', 'x', false, true],
  ['*', '', true, true],
  ['', '', true, true],
  ['', 'a', false, true],
  ['**', 'abc', true, true],
  ['*', 'a/b', false, true],
  ['*/*', 'a/b', true, true],
  ['[/]', '/', true, true], // classes may match '/'
  ['a\\/b', 'a/b', true, true],
  ['[z-a]', 'm', false, true], // empty range: valid, matches nothing
  ['x*[a/]*c', 'xa/c', false, true], // Go's greedy star: no match (there would be one)
  ['foo*', 'foo', true, true],
  ['*o*', 'foo.service', true, true],
  ['%p*', '%p1', true, true],
];

describe('globMatch (Go path.Match)', () => {
  it.each([...goTable, ...unitTable])('Match(%j, %j) = %s (valid %s)', (pattern, name, matched, valid) => {
    expect(globMatch(pattern, name)).toBe(matched);
    expect(isValidGlob(pattern)).toBe(valid);
  });
});
