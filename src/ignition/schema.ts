/**
 * Validation against Ignition's own JSON schemas (schema/v3_N.json, spec 3.0–3.4, see
 * schema/README.md), compiled with ajv once per version on first use. Errors carry the JSON path
 * (`$.storage.files[0].mode: must be integer`); keys the schema does not know are warnings, as
 * Ignition reports unused keys.
 *
 * The schemas declare draft-04; the keywords they use (type, properties, items, required, allOf,
 * $ref into definitions) mean the same in ajv's default draft, so `$schema` is dropped on compile.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import v3_0 from './schema/v3_0.json' with { type: 'json' };
import v3_1 from './schema/v3_1.json' with { type: 'json' };
import v3_2 from './schema/v3_2.json' with { type: 'json' };
import v3_3 from './schema/v3_3.json' with { type: 'json' };
import v3_4 from './schema/v3_4.json' with { type: 'json' };
import { pointerToPath, type Position } from './jsonpos.js';
import type { Issue } from './types.js';

type Schema = Record<string, unknown>;

/** Minor version of spec 3.x → its schema. */
export const SCHEMAS: Readonly<Record<number, Schema>> = { 0: v3_0, 1: v3_1, 2: v3_2, 3: v3_3, 4: v3_4 };

const compiled = new Map<number, ValidateFunction>();
let ajv: Ajv | undefined;

function validator(minor: number): ValidateFunction {
  let fn = compiled.get(minor);
  if (fn) return fn;
  const schema = SCHEMAS[minor];
  if (!schema) throw new Error(`no schema for spec 3.${minor}`);
  ajv ??= new Ajv({ allErrors: true, strict: false });
  const copy: Schema = { ...schema };
  delete copy.$schema;
  fn = ajv.compile(copy);
  compiled.set(minor, fn);
  return fn;
}

function at(positions: Map<string, Position> | undefined, ptr: string): Pick<Issue, 'line' | 'col'> {
  const p = positions?.get(ptr);
  return p ? { line: p.line, col: p.col } : {};
}

function message(e: ErrorObject): { ptr: string; text: string } {
  if (e.keyword === 'required') {
    const missing = (e.params as { missingProperty: string }).missingProperty;
    return { ptr: `${e.instancePath}/${missing}`, text: 'is required' };
  }
  if (e.keyword === 'type') {
    // Ignition's optional fields are pointers: `["integer","null"]` is reported as integer.
    const t = (e.params as { type: string | string[] }).type;
    const types = (Array.isArray(t) ? t : String(t).split(',')).filter((x) => x !== 'null');
    return { ptr: e.instancePath, text: `must be ${types.join(' or ')}` };
  }
  return { ptr: e.instancePath, text: e.message ?? e.keyword };
}

/** Schema errors of `value` against spec 3.`minor`, one per path and message, in document order. */
export function schemaErrors(minor: number, value: unknown, positions?: Map<string, Position>): Issue[] {
  const fn = validator(minor);
  if (fn(value)) return [];
  const seen = new Set<string>();
  const out: Issue[] = [];
  for (const e of fn.errors ?? []) {
    const { ptr, text } = message(e);
    const key = `${ptr}\0${text}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const loc = e.keyword === 'required' ? at(positions, e.instancePath) : at(positions, ptr);
    out.push({ kind: 'error', path: pointerToPath(ptr), ...loc, message: text });
  }
  return out.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
}

function resolveRef(root: Schema, ref: string): Schema {
  let node: unknown = root;
  for (const seg of ref.replace(/^#\//, '').split('/')) node = (node as Schema)[seg];
  return node as Schema;
}

/** The property names a (sub)schema allows, or undefined when it is not an object schema. */
function knownProps(root: Schema, s: Schema): Map<string, Schema> | undefined {
  if (typeof s.$ref === 'string') return knownProps(root, resolveRef(root, s.$ref));
  let props: Map<string, Schema> | undefined;
  if (s.properties && typeof s.properties === 'object') {
    props = new Map(Object.entries(s.properties as Record<string, Schema>));
  }
  if (Array.isArray(s.allOf)) {
    for (const part of s.allOf as Schema[]) {
      const p = knownProps(root, part);
      if (p) {
        props ??= new Map();
        for (const [k, v] of p) props.set(k, v);
      }
    }
  }
  return props;
}

function itemsOf(root: Schema, s: Schema): Schema | undefined {
  if (typeof s.$ref === 'string') return itemsOf(root, resolveRef(root, s.$ref));
  return s.items && typeof s.items === 'object' ? (s.items as Schema) : undefined;
}

/** Warnings for keys the spec 3.`minor` schema does not define (Ignition's "unused key"). */
export function unknownKeyWarnings(
  minor: number,
  value: unknown,
  positions?: Map<string, Position>,
): Issue[] {
  const root = SCHEMAS[minor]!;
  const out: Issue[] = [];
  const walk = (s: Schema, v: unknown, ptr: string): void => {
    if (Array.isArray(v)) {
      const items = itemsOf(root, s);
      if (items) v.forEach((x, i) => walk(items, x, `${ptr}/${i}`));
      return;
    }
    if (v === null || typeof v !== 'object') return;
    const props = knownProps(root, s);
    if (!props) return;
    for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
      const cptr = `${ptr}/${k.replaceAll('~', '~0').replaceAll('/', '~1')}`;
      const sub = props.get(k);
      if (!sub) {
        out.push({
          kind: 'warning',
          path: pointerToPath(cptr),
          ...at(positions, cptr),
          message: `unused key ${k}`,
        });
      } else {
        walk(sub, child, cptr);
      }
    }
  };
  walk(root, value, '');
  return out;
}
