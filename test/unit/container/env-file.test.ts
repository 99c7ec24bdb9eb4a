/**
 * EnvironmentFile= parsing (systemd's syntax) and its errors by exact message: an unterminated
 * quote names the file and the line it opened on, a NUL names the variable, and the container's
 * environment never carries a NUL to Docker (from a file or from the run spec). The last test reads
 * real files through containerEnvironment's default reader.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEnvironmentFile } from '../../../src/container/env-file.js';
import { containerEnvironment } from '../../../src/container/runner.js';
import type { ContainerSpec } from '../../../src/container/spec.js';
import { FlotillaError, isCode } from '../../../src/lib/errors.js';

const P = '/etc/app.env';
const parse = (t: string) => parseEnvironmentFile(t, P);
function errorOf(f: () => unknown): FlotillaError {
  try {
    f();
  } catch (e) {
    expect(isCode(e, 'E_CONTAINER_SPEC')).toBe(true);
    return e as FlotillaError;
  }
  throw new Error('accepted');
}

describe('systemd EnvironmentFile= syntax', () => {
  it.each<[string, string, [string, string][]]>([
    [
      'plain',
      'A=1\nB=two words  \n',
      [
        ['A', '1'],
        ['B', 'two words'],
      ],
    ],
    ['comments and blanks', '# c\n  ; c2\n\nA=1 # not a comment\n', [['A', '1 # not a comment']]],
    ['spaces around = and the name', '  A =  x\n', [['A', 'x']]],
    ['export prefix', 'export A=1\n', [['A', '1']]],
    ['double quotes keep whitespace', 'A="  a b  "\n', [['A', '  a b  ']]],
    ['double-quote escapes', 'A="q\\"b\\\\s\\`\\$x\\n"\n', [['A', 'q"b\\s`$x\\n']]],
    ['single quotes are literal', "A='a \\\" b'\n", [['A', 'a \\" b']]],
    [
      'a quoted value spans lines',
      'A="line1\nline2"\nB=2\n',
      [
        ['A', 'line1\nline2'],
        ['B', '2'],
      ],
    ],
    [
      'backslash-newline continues',
      'A=one\\\ntwo\nB=x\\ y\n',
      [
        ['A', 'onetwo'],
        ['B', 'x y'],
      ],
    ],
    ['after a closing quote the value goes on', 'A="a" b\n', [['A', 'ab']]],
    ['a quote inside a value is literal', 'A=it"s\n', [['A', 'it"s']]],
    [
      'empty value',
      'A=\nB=""\n',
      [
        ['A', ''],
        ['B', ''],
      ],
    ],
    [
      'CRLF',
      'A=1\r\nB="x"\r\n',
      [
        ['A', '1'],
        ['B', 'x'],
      ],
    ],
    ['no final newline', 'A=1', [['A', '1']]],
    [
      'later wins is left to the caller',
      'A=1\nA=2',
      [
        ['A', '1'],
        ['A', '2'],
      ],
    ],
  ])('%s', (_, text, want) => {
    expect(parse(text)).toEqual(want);
  });
});

describe('errors name the file and line', () => {
  it.each([
    [
      'A=1\nB="open\nC=3\n',
      'line 2: B: unterminated double quote (a quoted value may span lines, but this one runs to the end of the file)',
    ],
    [
      "A='x",
      'line 1: A: unterminated single quote (a quoted value may span lines, but this one runs to the end of the file)',
    ],
    [
      'A="x\\',
      'line 1: A: unterminated double quote (a quoted value may span lines, but this one runs to the end of the file)',
    ],
    ['A=1\nJUSTANAME\n', 'line 2: expected NAME=VALUE (the line has no "=")'],
    ['A=1\nJUSTANAME', 'line 2: expected NAME=VALUE (the line has no "=")'],
    ['=x\n', 'line 1: expected NAME=VALUE (the name is missing)'],
    [
      '1A=x\n',
      'line 1: "1A" is not a valid variable name (letters, digits and _, not starting with a digit)',
    ],
    [
      'A-B=x\n',
      'line 1: "A-B" is not a valid variable name (letters, digits and _, not starting with a digit)',
    ],
    ['A=1\nSECRET=ab\0cd\n', 'line 2: SECRET contains a NUL byte, which no process environment can hold'],
    ['Q="a\0b"\n', 'line 1: Q contains a NUL byte, which no process environment can hold'],
  ])('%j', (text, want) => {
    const e = errorOf(() => parse(text));
    expect(e.message).toBe(`EnvironmentFile ${P}: ${want}`);
    expect(e.details).toMatchObject({ path: P });
  });

  it('the NUL error names the variable in the details', () => {
    expect(errorOf(() => parse('K=\0')).details).toMatchObject({ path: P, line: 1, variable: 'K' });
  });
});

describe('the container environment never carries a NUL to Docker', () => {
  const spec = (over: Partial<ContainerSpec>): ContainerSpec => ({
    image: 'busybox',
    name: 'x',
    environment: [],
    environmentFiles: [],
    volumes: [],
    publish: [],
    labels: {},
    pullPolicy: 'missing',
    stopTimeout: 10,
    services: [],
    ...over,
  });

  it('from a real file on disk, and from the run spec', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-envfile-'));
    try {
      const good = join(dir, 'good.env');
      const bad = join(dir, 'bad.env');
      const open = join(dir, 'open.env');
      writeFileSync(good, '# db\nDB_HOST=db.local\nDB_PASS="p w"\n');
      writeFileSync(bad, 'OK=1\nTOKEN=a\0b\n');
      writeFileSync(open, 'OK=1\n\nMSG="hello\nworld\n');
      expect(
        containerEnvironment(
          spec({
            environmentFiles: [{ path: good, optional: false }],
            environment: [['DB_HOST', 'override']],
          }),
        ),
      ).toEqual(['DB_HOST=override', 'DB_PASS=p w']);
      expect(
        errorOf(() => containerEnvironment(spec({ environmentFiles: [{ path: bad, optional: false }] })))
          .message,
      ).toBe(
        `EnvironmentFile ${bad}: line 2: TOKEN contains a NUL byte, which no process environment can hold`,
      );
      expect(
        errorOf(() => containerEnvironment(spec({ environmentFiles: [{ path: open, optional: false }] })))
          .message,
      ).toBe(
        `EnvironmentFile ${open}: line 3: MSG: unterminated double quote (a quoted value may span lines, but this one runs to the end of the file)`,
      );
      // A hand-edited run spec.
      expect(errorOf(() => containerEnvironment(spec({ environment: [['PW', 'x\0y']] }))).message).toBe(
        'environment variable PW contains a NUL byte, which no process environment can hold',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
