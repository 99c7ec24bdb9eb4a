/**
 * Dynamic machine metadata: fleet's `PATCH /fleet/v1/machines` (JSON-patch-like ops on
 * `/<machineID>/metadata/<key>`), stored apart from the machine's presence record so it survives the
 * machine leaving and rejoining, like fleet's `machines/<id>/metadata/<key>`.
 *
 * Key layout (below the store prefix; values are JSON strings):
 *   machine-metadata/<machineID>/<key>   "value"   set by add/replace
 *                                        ""        set by remove: masks the key (also one from config)
 *
 * The machine's effective metadata is its configured metadata overlaid with these keys (an empty
 * value deletes). The API merges at read time; each agent also re-publishes its own machine record
 * with the merged metadata when its keys change (OwnMetadata), so the engine schedules on it.
 */
import type { KvStore } from '../registry/kv.js';
import { op } from '../registry/kv.js';
import { HttpError } from './http.js';

export const METADATA_PREFIX = 'machine-metadata/';
const PATH_RE = /^\/([^/]+)\/metadata\/([A-Za-z0-9_.-]+)$/;

export const metadataKey = (machineID: string, key: string) => `${METADATA_PREFIX}${machineID}/${key}`;

export interface MetadataOp {
  op: 'add' | 'remove' | 'replace';
  machineID: string;
  key: string;
  /** Absent for remove. */
  value?: string;
}

const decodeError = () =>
  new HttpError(
    400,
    'unable to decode body: expected a JSON array of {"op","path","value":{"value":"<string>"}}',
  );

/**
 * Validate a PATCH body with fleet's rules and messages: every op is checked (op, then path, then
 * value) before any is applied. `value` is fleet's nested `{"value": "..."}`; the bare string its
 * documentation shows is accepted too.
 */
export function parseMetadataOps(raw: unknown): MetadataOp[] {
  if (raw === null) return [];
  if (!Array.isArray(raw)) throw decodeError();
  const out: MetadataOp[] = [];
  for (const item of raw) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw decodeError();
    const o = item as Record<string, unknown>;
    const kind = o.op;
    if (kind !== 'add' && kind !== 'remove' && kind !== 'replace') {
      throw new HttpError(400, 'invalid op: expect add, remove, or replace');
    }
    const m = typeof o.path === 'string' ? PATH_RE.exec(o.path) : null;
    if (!m) throw new HttpError(400, 'machine metadata path invalid');
    let value: string | undefined;
    const v = o.value;
    if (typeof v === 'string') value = v;
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const inner = (v as Record<string, unknown>).value;
      if (inner !== undefined && typeof inner !== 'string') throw decodeError();
      value = inner;
    } else if (v !== undefined && v !== null) throw decodeError();
    if (kind !== 'remove' && (value === undefined || value === '')) {
      throw new HttpError(400, 'invalid value: add and replace require a value');
    }
    out.push(
      kind === 'remove'
        ? { op: kind, machineID: m[1]!, key: m[2]! }
        : { op: kind, machineID: m[1]!, key: m[2]!, value: value! },
    );
  }
  return out;
}

/** Apply ops in order, as one txn (the last op on a key wins). */
export async function applyMetadataOps(store: KvStore, ops: readonly MetadataOp[]): Promise<void> {
  if (ops.length === 0) return;
  const last = new Map<string, string>();
  for (const o of ops) last.set(metadataKey(o.machineID, o.key), o.op === 'remove' ? '' : o.value!);
  const puts = [...last].map(([k, v]) => op.put(k, JSON.stringify(v)));
  // etcd refuses more than 128 ops per txn; a patch that large is applied in order, in chunks.
  for (let i = 0; i < puts.length; i += 100) {
    await store.txn({ compare: [], success: puts.slice(i, i + 100) });
  }
}

/** Parse one stored key/value; undefined for keys that are not metadata. */
export function parseMetadataKv(
  key: string,
  value: string | undefined,
): { machineID: string; key: string; value: string | undefined } | undefined {
  if (!key.startsWith(METADATA_PREFIX)) return undefined;
  const rest = key.slice(METADATA_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  let v: string | undefined;
  if (value !== undefined) {
    try {
      const p = JSON.parse(value) as unknown;
      v = typeof p === 'string' ? p : undefined;
    } catch {
      v = undefined;
    }
  }
  return { machineID: rest.slice(0, slash), key: rest.slice(slash + 1), value: v };
}

/** Dynamic metadata by machine ID ('' = removed). */
export async function readDynamicMetadata(
  store: KvStore,
  machineID?: string,
): Promise<Map<string, Record<string, string>>> {
  const { kvs } = await store.range(
    machineID === undefined ? METADATA_PREFIX : `${METADATA_PREFIX}${machineID}/`,
  );
  return groupMetadata(kvs);
}

export function groupMetadata(
  kvs: readonly { key: string; value: string }[],
): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const kv of kvs) {
    const p = parseMetadataKv(kv.key, kv.value);
    if (!p || p.value === undefined) continue;
    let m = out.get(p.machineID);
    if (!m) out.set(p.machineID, (m = {}));
    m[p.key] = p.value;
  }
  return out;
}

/** `base` overlaid with `dynamic`; an empty dynamic value removes the key. */
export function mergeMetadata(
  base: Readonly<Record<string, string>>,
  dynamic: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const out = { ...base };
  for (const [k, v] of Object.entries(dynamic ?? {})) {
    if (v === '') delete out[k];
    else out[k] = v;
  }
  return out;
}

/**
 * This agent's own metadata: configured + dynamic. The daemon publishes `merged()` in its machine
 * record and calls `apply` with every watch batch (true = changed: publish again).
 */
export class OwnMetadata {
  private dynamic: Record<string, string> = {};

  constructor(
    private readonly store: KvStore,
    private readonly machineID: string,
    private base: Record<string, string>,
  ) {}

  /** (Re-)read this machine's dynamic keys; true when the merged metadata changed. */
  async load(): Promise<boolean> {
    const before = JSON.stringify(this.merged());
    this.dynamic = (await readDynamicMetadata(this.store, this.machineID)).get(this.machineID) ?? {};
    return JSON.stringify(this.merged()) !== before;
  }

  setBase(base: Record<string, string>): void {
    this.base = base;
  }

  merged(): Record<string, string> {
    return mergeMetadata(this.base, this.dynamic);
  }

  apply(events: readonly { type: 'put' | 'delete'; kv: { key: string; value: string } }[]): boolean {
    let changed = false;
    for (const e of events) {
      const p = parseMetadataKv(e.kv.key, e.type === 'put' ? e.kv.value : undefined);
      if (!p || p.machineID !== this.machineID) continue;
      if (p.value === undefined) delete this.dynamic[p.key];
      else this.dynamic[p.key] = p.value;
      changed = true;
    }
    return changed;
  }
}
