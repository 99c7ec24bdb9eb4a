/**
 * YAML for cloud-config, typed as coreos-cloudinit's YAML library (go-yaml v1, a YAML 1.1 reader)
 * typed it, not as YAML 1.2 or the npm `yaml` package's own 1.1 schema:
 *
 *   - plain `y|Y|yes|Yes|YES|on|On|ON|true|True|TRUE` are true, the `n/no/off/false` family false;
 *   - `~`, `null`, `Null`, `NULL` and the empty plain scalar are null;
 *   - a plain scalar starting with a digit, `+`, `-` or `.` is an int when Go's ParseInt(base 0)
 *     takes it with `_` removed (`0744` is octal 484, `0x1f`, `1_000`), else a float when
 *     ParseFloat takes it (`1.5`, `1e3`, `08`), else a string: `14:00` stays "14:00" (no
 *     sexagesimal), `2001-12-14` stays a string (no timestamps);
 *   - `.inf`, `-.inf`, `.nan` (and their capitalised forms) are floats; `!!binary` is base64 bytes;
 *     quoted and block scalars are strings; explicit `!!str !!int !!bool !!float !!null` tags win.
 *
 * Every scalar also keeps its text (`text`): what go-yaml stores into a string-typed field, so
 * `reboot-strategy: off` is the string "off" and `permissions: 0744` the string "0744". The parse
 * runs the npm `yaml` package with its failsafe schema (every scalar a string, positions kept) and
 * types plain scalars with the rules above. Lines are 1-based and count the `#cloud-config` header.
 */
import { isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node, Scalar } from 'yaml';

export type NodeKind = 'map' | 'seq' | 'string' | 'int' | 'float64' | 'bool' | 'null';

export interface CcNode {
  kind: NodeKind;
  /** The typed value of a scalar (number, boolean, string, null); undefined for collections. */
  value?: unknown;
  /** A scalar's text (decoded bytes for `!!binary`, as latin1); '' for null and collections. */
  text: string;
  /** `!!binary` content. */
  binary?: Buffer;
  /** 1-based line of the key (map entries) or of the element (sequence items). */
  line: number;
  /** Map entries in document order (keys as written, `-` not yet normalised). */
  entries?: { key: string; node: CcNode }[];
  items?: CcNode[];
}

export interface YamlError {
  line: number;
  message: string;
}

const TRUE = new Set(['y', 'Y', 'yes', 'Yes', 'YES', 'on', 'On', 'ON', 'true', 'True', 'TRUE']);
const FALSE = new Set(['n', 'N', 'no', 'No', 'NO', 'off', 'Off', 'OFF', 'false', 'False', 'FALSE']);
const NULL = new Set(['', '~', 'null', 'Null', 'NULL']);
const INF = new Set(['.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF']);
const NEG_INF = new Set(['-.inf', '-.Inf', '-.INF']);
const NAN = new Set(['.nan', '.NaN', '.NAN']);

/** Go's strconv.ParseInt(s, 0, 64) (sign, 0x/0o/0b prefixes, leading-0 octal), or undefined. */
export function goParseInt(s: string): number | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) return undefined;
  const body = m[2]!;
  let v: bigint;
  if (/^0[xXbBoO]/.test(body)) v = BigInt(body.toLowerCase());
  else if (body.length > 1 && body.startsWith('0')) v = BigInt(`0o${body.slice(1)}`);
  else v = BigInt(body);
  if (m[1] === '-') v = -v;
  if (v > 9223372036854775807n || v < -9223372036854775808n) return undefined;
  return Number(v);
}

/** Go's strconv.ParseFloat(s, 64) for decimal forms, or undefined. */
function goParseFloat(s: string): number | undefined {
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return Number(s);
  if (/^[+-]?(inf|infinity)$/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(s)) return NaN;
  return undefined;
}

/** Type a plain scalar as go-yaml v1 resolves it. */
export function resolvePlain(text: string): { kind: NodeKind; value: unknown } {
  if (NULL.has(text)) return { kind: 'null', value: null };
  if (TRUE.has(text)) return { kind: 'bool', value: true };
  if (FALSE.has(text)) return { kind: 'bool', value: false };
  if (INF.has(text)) return { kind: 'float64', value: Infinity };
  if (NEG_INF.has(text)) return { kind: 'float64', value: -Infinity };
  if (NAN.has(text)) return { kind: 'float64', value: NaN };
  if (/^[-+.0-9]/.test(text)) {
    const plain = text.replace(/_/g, '');
    const n = goParseInt(plain);
    if (n !== undefined) return { kind: 'int', value: n };
    const x = goParseFloat(plain);
    if (x !== undefined) return { kind: 'float64', value: x };
  }
  return { kind: 'string', value: text };
}

class Lines {
  private readonly starts: number[] = [0];
  constructor(text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
  }
  /** 1-based line of a character offset. */
  lineOf(offset: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }
}

const TAG = 'tag:yaml.org,2002:';

function scalarText(v: unknown): string {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function scalarNode(sc: Scalar, line: number): CcNode {
  if (Buffer.isBuffer(sc.value)) {
    const buf = sc.value;
    return { kind: 'string', value: buf.toString('latin1'), text: buf.toString('latin1'), binary: buf, line };
  }
  const text = scalarText(sc.value);
  const tag = sc.tag?.startsWith(TAG) ? sc.tag.slice(TAG.length) : sc.tag;
  if (tag === 'str') return { kind: 'string', value: text, text, line };
  if (tag === 'null') return { kind: 'null', value: null, text: '', line };
  if (tag === 'bool' || tag === 'int' || tag === 'float') {
    const r = resolvePlain(text);
    const want = tag === 'float' ? 'float64' : tag;
    if (r.kind === want || (want === 'float64' && r.kind === 'int')) return { ...r, kind: want, text, line };
  }
  if (sc.type === Scalar.PLAIN && (tag === undefined || tag === null)) {
    const r = resolvePlain(text);
    return { ...r, text: r.kind === 'null' ? '' : text, line };
  }
  return { kind: 'string', value: text, text, line };
}

interface Walk {
  doc: Document;
  lines: Lines;
  /** Character ranges of scalars that span lines (tabs inside them are content). */
  spans: [number, number][];
  depth: number;
}

function toNode(n: Node | null | undefined, line: number, w: Walk): CcNode {
  if (w.depth > 200) throw new Error('YAML nesting too deep');
  if (isAlias(n)) return toNode(n.resolve(w.doc), line, w);
  if (n === null || n === undefined) return { kind: 'null', value: null, text: '', line };
  if (isScalar(n)) {
    if (n.range && n.type !== Scalar.PLAIN) w.spans.push([n.range[0], n.range[1]]);
    else if (n.range) w.spans.push([n.range[0], n.range[1]]);
    return scalarNode(n, line);
  }
  w.depth++;
  try {
    if (isMap(n)) {
      const entries: { key: string; node: CcNode }[] = [];
      for (const pair of n.items) {
        const k = pair.key as Node | null;
        const keyNode = isAlias(k) ? (k.resolve(w.doc) as Node | undefined) : k;
        const keyText = isScalar(keyNode) ? scalarText(keyNode.value) : '';
        const keyLine = keyNode?.range ? w.lines.lineOf(keyNode.range[0]) : line;
        entries.push({ key: keyText, node: toNode(pair.value as Node | null, keyLine, w) });
      }
      return { kind: 'map', text: '', line, entries };
    }
    if (isSeq(n)) {
      const items = n.items.map((it) => {
        const itLine = (it as Node | null)?.range ? w.lines.lineOf((it as Node).range![0]) : line;
        return toNode(it as Node | null, itLine, w);
      });
      return { kind: 'seq', text: '', line, items };
    }
  } finally {
    w.depth--;
  }
  return { kind: 'null', value: null, text: '', line };
}

/** go-yaml's words for the npm parser's most common errors (host-tools.md §1.7: `line N: msg`). */
function goMessage(code: string, msg: string): string {
  if (/Implicit map keys need to be followed by map values/.test(msg)) return "could not find expected ':'";
  if (/Nested mappings are not allowed in compact mappings/.test(msg))
    return 'mapping values are not allowed in this context';
  if (/All mapping items must start at the same column/.test(msg)) return 'did not find expected key';
  if (/Sequence item without - indicator/.test(msg)) return "did not find expected '-' indicator";
  if (/Flow sequence .* end with a \]/.test(msg)) return "did not find expected ',' or ']'";
  if (/Flow map .* end with a \}/.test(msg)) return "did not find expected ',' or '}'";
  if (/Missing closing .?quote/i.test(msg)) return 'found unexpected end of stream';
  if (/Tabs are not allowed as indentation/.test(msg)) return 'found character that cannot start any token';
  void code;
  return msg.split('\n')[0]!;
}

/**
 * A tab in a line's indentation (outside a multi-line scalar) is go-yaml's `found character that
 * cannot start any token`; the npm parser accepts some of these, so they are found here.
 */
function tabError(text: string, w: Walk): YamlError | undefined {
  let off = 0;
  for (const raw of text.split('\n')) {
    const lead = /^[ \t]*/.exec(raw)![0];
    if (lead.includes('\t')) {
      const at = off + lead.indexOf('\t');
      if (!w.spans.some(([a, b]) => at > a && at < b))
        return { line: w.lines.lineOf(at), message: 'found character that cannot start any token' };
    }
    off += raw.length + 1;
  }
  return undefined;
}

export interface ParsedYaml {
  /** The document's root; null for an empty document. */
  root: CcNode | null;
  error?: YamlError;
}

/** Parse cloud-config YAML; a syntax error comes back as `error` with its line (nothing thrown). */
export function parseYaml(text: string): ParsedYaml {
  const src = text.replace(/\r/g, '');
  const lines = new Lines(src);
  const doc = parseDocument(src, {
    schema: 'failsafe',
    uniqueKeys: false,
    prettyErrors: false,
    strict: false,
  });
  const w: Walk = { doc, lines, spans: [], depth: 0 };
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const message = goMessage(e.code, e.message);
    let at = e.pos[0];
    // libyaml marks the ':' that starts the nested mapping, not the scalar before it.
    if (message === 'mapping values are not allowed in this context') {
      const colon = /:(\s|$)/.exec(src.slice(at));
      if (colon) at += colon.index;
    }
    return { root: null, error: { line: lines.lineOf(at), message } };
  }
  let root: CcNode | null;
  try {
    const c = doc.contents as Node | null;
    root = c ? toNode(c, c.range ? lines.lineOf(c.range[0]) : 1, w) : null;
  } catch (err) {
    return { root: null, error: { line: 1, message: (err as Error).message } };
  }
  const tab = tabError(src, w);
  if (tab) return { root: null, error: tab };
  return { root };
}
