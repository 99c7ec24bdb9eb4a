/**
 * `ignition.config.merge` and `replace`, as Ignition renders a config (its engine's renderConfig):
 *
 * - `replace`: the referenced config is fetched, rendered in turn, and used instead of this one;
 * - `merge`: each referenced config is fetched and rendered, then merged over the current result
 *   in list order (later wins).
 *
 * Merge rules (Ignition's config/merge): a value set in the child wins over the parent's, an unset
 * (absent or null) one keeps the parent's; objects merge field by field; lists whose entries have
 * a key merge entry by entry (files, directories and links by path, and across the three: a child
 * node replaces a parent node of another type at the same path; units and drop-ins by name;
 * users and groups by name; headers by name; keys, group lists, kernel arguments by value); other
 * lists are concatenated. Rendering is bounded: at most MAX_DEPTH levels and MAX_CONFIGS fetches.
 */
import { FlotillaError } from '../lib/errors.js';
import { nullLogger, type Logger } from '../lib/log.js';
import { parseIgnition } from './parse.js';
import { fetchResource, type ResourceOptions } from './resources.js';
import { formatIssue, type IgnitionConfig, type Resource } from './types.js';

export const MAX_DEPTH = 10;
export const MAX_CONFIGS = 64;

type Obj = Record<string, unknown>;

/** How entries of the list at a (generalised) path are keyed; `''` means by the value itself. */
const KEYS: Record<string, string> = {
  'storage.files': 'path',
  'storage.directories': 'path',
  'storage.links': 'path',
  'storage.disks': 'device',
  'storage.disks[].partitions': 'number',
  'storage.raid': 'name',
  'storage.luks': 'name',
  'storage.filesystems': 'device',
  'systemd.units': 'name',
  'systemd.units[].dropins': 'name',
  'passwd.users': 'name',
  'passwd.users[].sshAuthorizedKeys': '',
  'passwd.users[].groups': '',
  'passwd.groups': 'name',
  'kernelArguments.shouldExist': '',
  'kernelArguments.shouldNotExist': '',
  'ignition.proxy.noProxy': '',
};

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

function keyOf(entry: unknown, key: string): unknown {
  return key === '' ? entry : isObj(entry) ? entry[key] : undefined;
}

function mergeList(parent: unknown[], child: unknown[], path: string): unknown[] {
  const key = KEYS[path] ?? (path.endsWith('httpHeaders') ? 'name' : undefined);
  if (key === undefined) return [...parent, ...child];
  const out = [...parent];
  for (const c of child) {
    const k = keyOf(c, key);
    const at = k === undefined ? -1 : out.findIndex((p) => keyOf(p, key) === k);
    if (at < 0) out.push(c);
    else out[at] = mergeValue(out[at], c, `${path}[]`);
  }
  return out;
}

function mergeValue(parent: unknown, child: unknown, path: string): unknown {
  if (child === undefined || child === null) return parent;
  if (Array.isArray(child)) return mergeList(Array.isArray(parent) ? parent : [], child, path);
  if (isObj(child) && isObj(parent)) {
    const out: Obj = { ...parent };
    for (const [k, v] of Object.entries(child))
      out[k] = mergeValue(parent[k], v, path === '' ? k : `${path}.${k}`);
    return out;
  }
  return child;
}

const NODE_LISTS = ['files', 'directories', 'links'] as const;

/** `child` merged over `parent` (neither is modified). `ignition.config` is not carried over. */
export function mergeConfigs(parent: IgnitionConfig, child: IgnitionConfig): IgnitionConfig {
  const p = structuredClone(parent) as unknown as Obj;
  const c = structuredClone(child) as unknown as Obj;
  for (const cfg of [p, c]) if (isObj(cfg.ignition)) delete cfg.ignition.config;
  // A child node replaces a parent node of another type at the same path.
  const ps = p.storage as Obj | undefined;
  const cs = c.storage as Obj | undefined;
  if (ps && cs) {
    for (const t of NODE_LISTS) {
      const childPaths = new Set(((cs[t] as Obj[] | undefined) ?? []).map((n) => n.path));
      for (const other of NODE_LISTS) {
        if (other === t || !Array.isArray(ps[other])) continue;
        ps[other] = (ps[other] as Obj[]).filter((n) => !childPaths.has(n.path));
      }
    }
  }
  return mergeValue(p, c, '') as IgnitionConfig;
}

export interface RenderOptions extends ResourceOptions {
  log?: Logger;
}

interface RenderState {
  fetched: number;
}

async function fetchConfig(
  r: Resource,
  where: string,
  opts: RenderOptions,
  state: RenderState,
): Promise<IgnitionConfig> {
  if (++state.fetched > MAX_CONFIGS) {
    throw new FlotillaError('E_IGNITION', `${where}: more than ${MAX_CONFIGS} referenced configs`, {
      path: where,
    });
  }
  const buf = await fetchResource(r, where, opts);
  const parsed = parseIgnition(buf, where);
  for (const w of parsed.warnings) (opts.log ?? nullLogger).warn({ config: where }, formatIssue(w));
  return parsed.config;
}

async function render(
  cfg: IgnitionConfig,
  where: string,
  depth: number,
  opts: RenderOptions,
  state: RenderState,
): Promise<IgnitionConfig> {
  const ref = cfg.ignition.config;
  if (!ref || (!ref.replace && !ref.merge?.length)) return cfg;
  if (depth >= MAX_DEPTH) {
    throw new FlotillaError('E_IGNITION', `${where}: configs nest deeper than ${MAX_DEPTH} levels`, {
      path: where,
    });
  }
  const log = opts.log ?? nullLogger;
  if (ref.replace?.source != null) {
    const w = `${where}ignition.config.replace`;
    log.info({ config: w }, 'replacing the config with a referenced one');
    const child = await fetchConfig(ref.replace, w, opts, state);
    return render(child, `${w} → `, depth + 1, opts, state);
  }
  let out = mergeConfigs(cfg, { ignition: { version: cfg.ignition.version } });
  for (const [i, r] of (ref.merge ?? []).entries()) {
    const w = `${where}ignition.config.merge[${i}]`;
    log.info({ config: w }, 'merging a referenced config');
    const child = await render(await fetchConfig(r, w, opts, state), `${w} → `, depth + 1, opts, state);
    out = mergeConfigs(out, child);
  }
  return out;
}

/** Resolve `ignition.config.merge/replace` of a validated config into one config. */
export function renderConfig(cfg: IgnitionConfig, opts: RenderOptions = {}): Promise<IgnitionConfig> {
  return render(cfg, '', 0, opts, { fetched: 0 });
}
