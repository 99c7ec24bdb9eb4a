/**
 * The cloud-config validator (`coreos-cloudinit -validate`, host-tools.md §1.7), the same code the
 * boot path runs before applying. Rules, messages, severities and order are coreos-cloudinit's:
 *
 *   checkDiscoveryUrl        warning  discovery URL is not valid           (coreos.etcd.discovery only)
 *   checkEncoding            error    content cannot be decoded as "<enc>"
 *   checkStructure           warning  unrecognized key "<k>" | deprecated key "<k>" (<why>)
 *                                     | incorrect type for "<k>" (want <kind>)
 *   checkValidity            error    invalid value <v>
 *   checkWriteFiles          error    file cannot be written to a read-only filesystem
 *   checkWriteFilesUnderCoreos info   write_files doesn't belong under coreos
 *
 * Typing follows coreos-cloudinit's "weak vs strong" coercion: a scalar's YAML 1.1 type (yaml.ts)
 * is replaced by the field's type where the two are compatible (a string field takes an int, a
 * float or a bool as its text, so `reboot-strategy: off` is "off" and `false` is "false", which is
 * an invalid value); a mismatch is an `incorrect type` warning. Lines come from the YAML nodes.
 * Entries print as `line N: error|warning|info: message`.
 */
import { posix } from 'node:path';
import { decodeContent } from './content.js';
import { CLOUD_CONFIG, humanType, isSchema, type Field, type Kind, type Schema } from './schema.js';
import { detectFormat } from './userdata.js';
import { parseYaml, type CcNode, type NodeKind } from './yaml.js';

export type EntryKind = 'error' | 'warning' | 'info';

export interface Entry {
  kind: EntryKind;
  message: string;
  line: number;
  /**
   * An `incorrect type` for a value go-yaml would not decode into the field (not set for an empty,
   * null value, which decodes as the zero value): coreos-cloudinit dropped such a config.
   */
  typeError?: boolean;
}

export function formatEntry(e: Entry): string {
  return `line ${e.line}: ${e.kind}: ${e.message}`;
}

/** The validator's node: a YAML node with its key name normalised (`-` → `_`). */
export interface VNode {
  name: string;
  line: number;
  node: CcNode;
  children: VNode[];
}

export function toVNode(n: CcNode, name: string): VNode {
  const children: VNode[] = [];
  if (n.kind === 'map') for (const e of n.entries!) children.push(toVNode(e.node, e.key.replace(/-/g, '_')));
  if (n.kind === 'seq') n.items!.forEach((it, i) => children.push(toVNode(it, `${name}[${i}]`)));
  return { name, line: n.line, node: n, children };
}

export function child(n: VNode | undefined, name: string): VNode | undefined {
  return n?.children.find((c) => c.name === name);
}

type GKind = Kind | 'struct' | 'slice';
type WKind = Exclude<NodeKind, 'map' | 'seq' | 'null'> | 'map' | 'slice' | 'invalid';

function gkind(t: Field['type']): GKind {
  if (typeof t === 'string') return t;
  return isSchema(t) ? 'struct' : 'slice';
}

function wkind(n: CcNode): WKind {
  if (n.kind === 'seq') return 'slice';
  if (n.kind === 'null') return 'invalid';
  return n.kind;
}

export function isCompatible(n: WKind, g: GKind): boolean {
  switch (g) {
    case 'string':
      return n === 'string' || n === 'int' || n === 'float64' || n === 'bool';
    case 'struct':
      return n === 'map';
    case 'float64':
      return n === 'float64' || n === 'int';
    case 'bool':
    case 'slice':
    case 'int':
      return n === g;
  }
}

/**
 * The value a field of type `t` holds for node `n` after coercion, or undefined when the node's
 * own type is kept (incompatible, a collection, or null).
 */
export function coerced(n: CcNode, t: Field['type']): string | number | boolean | undefined {
  const g = gkind(t);
  if (n.kind === 'map' || n.kind === 'seq' || n.kind === 'null' || !isCompatible(wkind(n), g))
    return undefined;
  if (g === 'string') return n.text;
  return n.value as number | boolean;
}

function elemType(t: Field['type']): Field['type'] {
  return (t as { slice: Kind | Schema }).slice;
}

class Report {
  readonly entries: Entry[] = [];
  error(line: number, message: string): void {
    this.entries.push({ kind: 'error', message, line });
  }
  warning(line: number, message: string): void {
    this.entries.push({ kind: 'warning', message, line });
  }
  info(line: number, message: string): void {
    this.entries.push({ kind: 'info', message, line });
  }
}

/** Go's url.ParseRequestURI, as far as discovery URLs go: an absolute URL or an absolute path. */
function isRequestUri(s: string): boolean {
  if (s === '' || [...s].some((ch) => ch.charCodeAt(0) <= 0x20 || ch.charCodeAt(0) === 0x7f)) return false;
  if (s.startsWith('/')) return true;
  return /^[A-Za-z][A-Za-z0-9+.-]*:/.test(s);
}

function strOf(n: VNode | undefined, t: Field['type'] = 'string'): string {
  if (!n) return '';
  const v = coerced(n.node, t);
  return typeof v === 'string' ? v : n.node.text;
}

function checkDiscoveryUrl(root: VNode, r: Report): void {
  const c = child(child(child(root, 'coreos'), 'etcd'), 'discovery');
  if (!c || c.node.kind === 'null') return;
  if (!isRequestUri(strOf(c))) r.warning(c.line, 'discovery URL is not valid');
}

function contentBytes(n: VNode | undefined): Buffer {
  if (!n) return Buffer.alloc(0);
  if (n.node.binary) return n.node.binary;
  return Buffer.from(strOf(n), 'utf8');
}

function checkEncoding(root: VNode, r: Report): void {
  for (const f of child(root, 'write_files')?.children ?? []) {
    const e = child(f, 'encoding');
    if (!e || e.node.kind === 'null') continue;
    const c = child(f, 'content');
    try {
      decodeContent(contentBytes(c), strOf(e));
    } catch {
      r.error(c?.line ?? 0, `content cannot be decoded as ${JSON.stringify(strOf(e))}`);
    }
  }
}

function checkNodeStructure(n: VNode, t: Field['type'], r: Report): void {
  if (!isCompatible(wkind(n.node), gkind(t))) {
    r.warning(n.line, `incorrect type for ${JSON.stringify(n.name)} (want ${humanType(t)})`);
    if (n.node.kind !== 'null') r.entries[r.entries.length - 1]!.typeError = true;
    return;
  }
  if (isSchema(t)) {
    for (const cn of n.children) {
      const f = Object.hasOwn(t, cn.name) ? t[cn.name] : undefined;
      if (!f) {
        r.warning(cn.line, `unrecognized key ${JSON.stringify(cn.name)}`);
        continue;
      }
      if (f.deprecated) r.warning(cn.line, `deprecated key ${JSON.stringify(cn.name)} (${f.deprecated})`);
      checkNodeStructure(cn, f.type, r);
    }
  } else if (typeof t === 'object') {
    for (const cn of n.children) checkNodeStructure(cn, elemType(t), r);
  }
}

function checkNodeValidity(n: VNode, f: Field, r: Report): void {
  if (f.valid) {
    const v = coerced(n.node, f.type);
    if (v !== undefined && v !== '' && v !== 0 && v !== false && !f.valid.test(String(v))) {
      r.error(n.line, `invalid value ${String(v)}`);
    }
  }
  const t = f.type;
  if (isSchema(t)) {
    for (const cn of n.children) {
      const cf = Object.hasOwn(t, cn.name) ? t[cn.name] : undefined;
      if (cf) checkNodeValidity(cn, cf, r);
    }
  } else if (typeof t === 'object') {
    // Elements carry their slice's field (and so its `valid` pattern), as coreos-cloudinit's do.
    for (const cn of n.children) checkNodeValidity(cn, { ...f, type: elemType(t) }, r);
  }
}

function checkWriteFiles(root: VNode, r: Report): void {
  for (const f of child(root, 'write_files')?.children ?? []) {
    const c = child(f, 'path');
    if (!c || c.node.kind === 'null') continue;
    const p = strOf(c);
    const d = p === '' ? '.' : posix.normalize(posix.dirname(p));
    if (d.startsWith('/usr')) r.error(c.line, 'file cannot be written to a read-only filesystem');
  }
}

function checkWriteFilesUnderCoreos(root: VNode, r: Report): void {
  const c = child(child(root, 'coreos'), 'write_files');
  if (c && c.node.kind !== 'null') r.info(c.line, "write_files doesn't belong under coreos");
}

/** Validate a `#cloud-config` document (header included, so lines match the file). */
export function validateCloudConfig(text: string): Entry[] {
  const r = new Report();
  const parsed = parseYaml(text);
  if (parsed.error) {
    r.error(parsed.error.line, parsed.error.message);
    return r.entries;
  }
  if (!parsed.root || parsed.root.kind === 'null') return r.entries;
  if (parsed.root.kind !== 'map') {
    const tag = parsed.root.kind === 'seq' ? '!!seq' : '!!str';
    r.error(parsed.root.line, `cannot unmarshal ${tag} into map[interface {}]interface {}`);
    return r.entries;
  }
  const root = toVNode(parsed.root, '');
  checkDiscoveryUrl(root, r);
  checkEncoding(root, r);
  checkNodeStructure(root, CLOUD_CONFIG, r);
  checkNodeValidity(root, { type: CLOUD_CONFIG }, r);
  checkWriteFiles(root, r);
  checkWriteFilesUnderCoreos(root, r);
  return r.entries;
}

export const NOT_CLOUD_CONFIG = 'must be "#cloud-config" or begin with "#!"';

/** Validate user-data of any format (empty, scripts and Ignition configs give no entries). */
export function validate(text: string): Entry[] {
  switch (detectFormat(text)) {
    case 'empty':
    case 'script':
    case 'ignition':
      return [];
    case 'cloud-config':
      return validateCloudConfig(text);
    case 'multipart':
    case 'unrecognized':
      return [{ kind: 'error', message: NOT_CLOUD_CONFIG, line: 1 }];
  }
}
