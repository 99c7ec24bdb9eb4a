/**
 * JSON with positions: the same values as JSON.parse, plus the line and column of every value (by
 * its JSON pointer), so validation errors can say where they are, as ignition-validate does
 * (`line 5 col 17`). A syntax error is a FlotillaError E_IGNITION naming the line and column.
 * Duplicate keys keep the last value (Go's encoding/json, which Ignition uses, does the same).
 */
import { FlotillaError } from '../lib/errors.js';

export interface Position {
  line: number;
  col: number;
}

export interface Located {
  value: unknown;
  /** JSON pointer (`/storage/files/0/mode`) → where that value starts. */
  positions: Map<string, Position>;
}

/** Deeper nesting is refused (no config needs it; it would only exhaust the stack). */
export const MAX_NESTING = 500;

const WS = new Set([' ', '\t', '\n', '\r']);

class Parser {
  private i = 0;
  private line = 1;
  private lineStart = 0;
  private depth = 0;
  readonly positions = new Map<string, Position>();

  constructor(private readonly s: string) {}

  private pos(): Position {
    return { line: this.line, col: this.i - this.lineStart + 1 };
  }

  fail(what: string): never {
    const { line, col } = this.pos();
    throw new FlotillaError('E_IGNITION', `config is not valid JSON: line ${line} col ${col}: ${what}`, {
      line,
      col,
    });
  }

  private ws(): void {
    while (this.i < this.s.length && WS.has(this.s[this.i]!)) {
      if (this.s[this.i] === '\n') {
        this.line++;
        this.lineStart = this.i + 1;
      }
      this.i++;
    }
  }

  private peekDesc(): string {
    if (this.i >= this.s.length) return 'unexpected end of input';
    return `unexpected character ${JSON.stringify(this.s[this.i])}`;
  }

  parseDocument(): unknown {
    this.ws();
    const v = this.value('');
    this.ws();
    if (this.i < this.s.length) this.fail(`${this.peekDesc()} after the top-level value`);
    return v;
  }

  private value(ptr: string): unknown {
    this.ws();
    this.positions.set(ptr, this.pos());
    const c = this.s[this.i];
    if (c === '{' || c === '[') {
      if (++this.depth > MAX_NESTING) this.fail(`nested deeper than ${MAX_NESTING} levels`);
      const v = c === '{' ? this.object(ptr) : this.array(ptr);
      this.depth--;
      return v;
    }
    if (c === '"') return this.string();
    if (c === 't' || c === 'f' || c === 'n') return this.literal();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
    return this.fail(`${this.peekDesc()}, expected a value`);
  }

  private object(ptr: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.i++; // {
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail(`${this.peekDesc()}, expected a string key`);
      const key = this.string();
      this.ws();
      if (this.s[this.i] !== ':')
        this.fail(`${this.peekDesc()}, expected ':' after key ${JSON.stringify(key)}`);
      this.i++;
      const child = `${ptr}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`;
      Object.defineProperty(out, key, {
        value: this.value(child),
        enumerable: true,
        writable: true,
        configurable: true,
      });
      this.ws();
      if (this.s[this.i] === ',') {
        this.i++;
        continue;
      }
      if (this.s[this.i] === '}') {
        this.i++;
        return out;
      }
      this.fail(`${this.peekDesc()}, expected ',' or '}' in an object`);
    }
  }

  private array(ptr: string): unknown[] {
    const out: unknown[] = [];
    this.i++; // [
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      out.push(this.value(`${ptr}/${out.length}`));
      this.ws();
      if (this.s[this.i] === ',') {
        this.i++;
        continue;
      }
      if (this.s[this.i] === ']') {
        this.i++;
        return out;
      }
      this.fail(`${this.peekDesc()}, expected ',' or ']' in an array`);
    }
  }

  private string(): string {
    const start = this.i;
    this.i++; // "
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined) this.fail('unterminated string');
      if (c === '"') break;
      if (c === '\\') this.i++;
      else if (c < ' ') this.fail('control character in a string');
      this.i++;
    }
    this.i++;
    try {
      return JSON.parse(this.s.slice(start, this.i)) as string;
    } catch {
      this.i = start;
      return this.fail('invalid escape in a string');
    }
  }

  private literal(): unknown {
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length;
        return v;
      }
    }
    return this.fail(`${this.peekDesc()}, expected a value`);
  }

  private number(): number {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.s.slice(this.i, this.i + 400));
    if (!m) return this.fail('invalid number');
    this.i += m[0].length;
    return Number(m[0]);
  }
}

/** Parse `text` as JSON, recording where each value starts. */
export function parseJsonWithPositions(text: string): Located {
  const p = new Parser(text);
  const value = p.parseDocument();
  return { value, positions: p.positions };
}

/** `/storage/files/0/mode` → `$.storage.files[0].mode`. */
export function pointerToPath(ptr: string): string {
  let out = '$';
  if (ptr === '') return out;
  for (const raw of ptr.slice(1).split('/')) {
    const seg = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    out += /^\d+$/.test(seg)
      ? `[${seg}]`
      : /^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)
        ? `.${seg}`
        : `[${JSON.stringify(seg)}]`;
  }
  return out;
}
