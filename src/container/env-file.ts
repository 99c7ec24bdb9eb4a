/**
 * `[Container] EnvironmentFile=` files, read by the runner on the machine at start, in systemd's
 * EnvironmentFile= syntax (systemd.exec(5), env-file.c), with its silent acceptances made errors:
 *
 *   NAME=VALUE            one assignment a line; whitespace around NAME and VALUE is dropped
 *   # comment, ; comment  only at the start of a line
 *   export NAME=VALUE     the shell's `export ` prefix is allowed
 *   NAME="a b\"c"         double quotes keep whitespace; \" \\ \` \$ are escapes, \<newline>
 *                         joins lines, any other backslash is kept; the value may span lines
 *   NAME='a b'            single quotes keep everything up to the next '
 *   NAME=a\ b             outside quotes a backslash takes the next character as is;
 *                         \<newline> continues the value on the next line
 *   NAME="a" b            as systemd: after a closing quote the value goes on (here `ab`)
 *
 * Where systemd accepts and guesses, this is an E_CONTAINER_SPEC error naming the file and line:
 *   - an unterminated quote (systemd takes the rest of the file as the value);
 *   - a line that is not NAME=VALUE, or an invalid NAME (systemd drops it with a warning);
 *     the line itself is not quoted in the error (it goes to the journal and may be a secret);
 *   - a NUL byte in a value (it cannot reach a process environment; Docker would cut or refuse it).
 * Pure.
 */
import { FlotillaError } from '../lib/errors.js';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The line is not quoted back: a stray line of an env file may well be a secret. */
const NOT_ASSIGNMENT = 'expected NAME=VALUE (the line has no "=")';

type State =
  'preKey' | 'key' | 'preValue' | 'value' | 'escape' | 'single' | 'double' | 'doubleEscape' | 'comment';

function fail(path: string, line: number, why: string, variable?: string): never {
  throw new FlotillaError('E_CONTAINER_SPEC', `EnvironmentFile ${path}: line ${line}: ${why}`, {
    path,
    line,
    ...(variable !== undefined ? { variable } : {}),
  });
}

/** Parse an environment file: its assignments in order (a later one of the same name wins when applied). */
export function parseEnvironmentFile(text: string, path: string): [string, string][] {
  const out: [string, string][] = [];
  let state: State = 'preKey';
  let key = '';
  let value = '';
  /** Length of `value` without trailing unquoted whitespace. */
  let keep = 0;
  let line = 1;
  /** Where the current assignment and the current quote began. */
  let keyLine = 1;
  let quoteLine = 1;

  const checkKey = () => {
    const k = key.trim();
    if (!NAME.test(k))
      fail(
        path,
        keyLine,
        k === ''
          ? 'expected NAME=VALUE (the name is missing)'
          : `${JSON.stringify(k)} is not a valid variable name (letters, digits and _, not starting with a digit)`,
      );
    key = k;
  };
  const push = () => {
    const v = value.slice(0, keep);
    if (v.includes('\0'))
      fail(path, keyLine, `${key} contains a NUL byte, which no process environment can hold`, key);
    out.push([key, v]);
    key = '';
    value = '';
    keep = 0;
  };
  const add = (s: string, significant = true) => {
    value += s;
    if (significant) keep = value.length;
  };

  for (let i = 0; i < text.length; i++) {
    let c = text[i]!;
    // "\r\n" and a lone "\r" end a line like "\n" (systemd's NEWLINE is "\n\r").
    if (c === '\r') {
      if (text[i + 1] === '\n') i++;
      c = '\n';
    }
    const nl = c === '\n';
    switch (state) {
      case 'preKey':
        if (c === '#' || c === ';') state = 'comment';
        else if (!/\s/.test(c)) {
          keyLine = line;
          key = c === '=' ? '' : c;
          if (c === '=') checkKey(); // no name: fails
          state = 'key';
        }
        break;
      case 'comment':
        if (nl) state = 'preKey';
        break;
      case 'key':
        if (nl) fail(path, keyLine, NOT_ASSIGNMENT);
        else if (c === '=') {
          checkKey();
          state = 'preValue';
        } else if (/\s/.test(c) && key === 'export') key = '';
        else key += c;
        break;
      case 'preValue':
        if (nl) {
          push();
          state = 'preKey';
        } else if (c === "'") {
          state = 'single';
          quoteLine = line;
        } else if (c === '"') {
          state = 'double';
          quoteLine = line;
        } else if (c === '\\') state = 'escape';
        else if (!/\s/.test(c)) {
          add(c);
          state = 'value';
        }
        break;
      case 'value':
        if (nl) {
          push();
          state = 'preKey';
        } else if (c === '\\') state = 'escape';
        else add(c, !/\s/.test(c));
        break;
      case 'escape':
        state = 'value';
        if (!nl) add(c); // \<newline>: the value goes on on the next line
        break;
      case 'single':
        if (c === "'") state = 'preValue';
        else add(c);
        break;
      case 'double':
        if (c === '"') state = 'preValue';
        else if (c === '\\') state = 'doubleEscape';
        else add(c);
        break;
      case 'doubleEscape':
        state = 'double';
        if ('"\\`$'.includes(c)) add(c);
        else if (!nl) add(`\\${c}`);
        break;
    }
    if (nl) line++;
  }
  switch (state) {
    case 'key':
      fail(path, keyLine, NOT_ASSIGNMENT);
      break;
    case 'single':
    case 'double':
    case 'doubleEscape':
      fail(
        path,
        quoteLine,
        `${key}: unterminated ${state === 'single' ? 'single' : 'double'} quote (a quoted value may span lines, but this one runs to the end of the file)`,
        key,
      );
      break;
    case 'preValue':
    case 'value':
    case 'escape':
      push();
      break;
    case 'preKey':
    case 'comment':
      break;
  }
  return out;
}

/** A NUL in any value of the final environment (run spec or file) is refused before Docker sees it. */
export function checkEnvironment(env: Iterable<[string, string]>): void {
  for (const [k, v] of env) {
    if (v.includes('\0'))
      throw new FlotillaError(
        'E_CONTAINER_SPEC',
        `environment variable ${k} contains a NUL byte, which no process environment can hold`,
        { variable: k },
      );
  }
}
