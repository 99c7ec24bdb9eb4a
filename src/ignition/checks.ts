/**
 * What the JSON schema cannot say: Ignition's own semantic validation (absolute and unique paths,
 * file modes, hash and compression values, unit and drop-in names, unique users and groups) and
 * flotilla's refusals of the parts it does not do (disks, RAID, LUKS, filesystems, kernel
 * arguments, deleting users or groups, custom CAs, proxies, fetch schemes other than data, http
 * and https). Every finding is an Issue with the JSON path; any error means nothing is applied.
 */
import { isCode } from '../lib/errors.js';
import { validateUnitName } from '../unit/name.js';
import { pointerToPath, type Position } from './jsonpos.js';
import type { IgnitionConfig, Issue, Resource } from './types.js';

export const SUPPORTED_SCHEMES = ['data:', 'http:', 'https:'] as const;
const HASH = /^(sha512-[0-9a-f]{128}|sha256-[0-9a-f]{64})$/;

class Findings {
  readonly issues: Issue[] = [];
  constructor(private readonly positions?: Map<string, Position>) {}
  add(kind: Issue['kind'], ptr: string, message: string): void {
    const p = this.positions?.get(ptr);
    this.issues.push({ kind, path: pointerToPath(ptr), ...(p ? { line: p.line, col: p.col } : {}), message });
  }
}

function resource(f: Findings, r: Resource | undefined, ptr: string): void {
  if (!r) return;
  const src = r.source ?? undefined;
  if (src !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(src);
    } catch {
      f.add('error', `${ptr}/source`, 'invalid url');
    }
    if (url && !(SUPPORTED_SCHEMES as readonly string[]).includes(url.protocol)) {
      f.add(
        'error',
        `${ptr}/source`,
        `scheme ${url.protocol.replace(/:$/, '')} is not supported by flotilla (only data, http and https)`,
      );
    }
  }
  const comp = r.compression ?? '';
  if (comp !== '' && comp !== 'gzip')
    f.add('error', `${ptr}/compression`, `invalid compression method ${JSON.stringify(comp)}`);
  const hash = r.verification?.hash ?? undefined;
  if (hash !== undefined) {
    if (!HASH.test(hash))
      f.add(
        'error',
        `${ptr}/verification/hash`,
        'invalid hash: expected sha512-<128 hex> or sha256-<64 hex>',
      );
    if (src === undefined) f.add('error', `${ptr}/verification/hash`, 'a hash needs a source');
  }
  const names = new Set<string>();
  (r.httpHeaders ?? []).forEach((h, i) => {
    if (h.name === '') f.add('error', `${ptr}/httpHeaders/${i}/name`, 'header name is empty');
    if (names.has(h.name.toLowerCase()))
      f.add('error', `${ptr}/httpHeaders/${i}/name`, `duplicate header ${h.name}`);
    names.add(h.name.toLowerCase());
  });
}

function nodePath(f: Findings, path: string, ptr: string, seen: Map<string, string>): void {
  if (!path.startsWith('/')) f.add('error', `${ptr}/path`, 'path not absolute');
  else if (path.split('/').includes('..')) f.add('error', `${ptr}/path`, 'path must not contain ".."');
  const norm = path.replace(/\/+/g, '/').replace(/(.)\/$/, '$1');
  const prev = seen.get(norm);
  if (prev !== undefined)
    f.add('error', `${ptr}/path`, `duplicate entry ${path} (also at ${pointerToPath(prev)})`);
  else seen.set(norm, ptr);
}

function mode(f: Findings, m: number | null | undefined, ptr: string): void {
  if (m === null || m === undefined) return;
  if (m < 0 || m > 0o7777)
    f.add('error', `${ptr}/mode`, `illegal file mode ${m} (must be 0 to 4095, i.e. 0o7777)`);
}

function nonEmpty(v: unknown): boolean {
  return Array.isArray(v) && v.length > 0;
}

/** The refusals of the disks stage: partitioning, RAID, LUKS and filesystems. */
export function storageRefusals(cfg: IgnitionConfig, positions?: Map<string, Position>): Issue[] {
  const f = new Findings(positions);
  const st = cfg.storage ?? {};
  const what: Record<string, string> = {
    disks: 'partitioning disks',
    raid: 'creating RAID arrays',
    luks: 'creating LUKS volumes',
    filesystems: 'creating or mounting filesystems',
  };
  for (const k of ['disks', 'raid', 'luks', 'filesystems'] as const) {
    if (nonEmpty(st[k]))
      f.add('error', `/storage/${k}`, `${what[k]} (storage.${k}) is not supported by flotilla`);
  }
  return f.issues;
}

/** Semantic errors, warnings and refusals of a schema-valid 3.x config. */
export function semanticIssues(cfg: IgnitionConfig, positions?: Map<string, Position>): Issue[] {
  const f = new Findings(positions);
  const ign = cfg.ignition;
  (ign.config?.merge ?? []).forEach((r, i) => {
    resource(f, r, `/ignition/config/merge/${i}`);
    if (r.source == null) f.add('error', `/ignition/config/merge/${i}/source`, 'is required');
  });
  // An empty `replace` (no source) is unset, as Ignition treats it.
  const replace = ign.config?.replace;
  if (replace && (replace.source != null || replace.verification?.hash != null)) {
    resource(f, replace, '/ignition/config/replace');
    if (nonEmpty(ign.config?.merge))
      f.add('error', '/ignition/config', 'merge and replace cannot both be set');
  }
  if (nonEmpty(ign.security?.tls?.certificateAuthorities)) {
    f.add(
      'error',
      '/ignition/security/tls/certificateAuthorities',
      'custom certificate authorities are not supported by flotilla',
    );
  }
  if (ign.proxy?.httpProxy || ign.proxy?.httpsProxy) {
    f.add('error', '/ignition/proxy', 'fetching through a proxy is not supported by flotilla');
  }
  for (const k of ['httpResponseHeaders', 'httpTotal'] as const) {
    const t = ign.timeouts?.[k];
    if (typeof t === 'number' && t < 0) f.add('error', `/ignition/timeouts/${k}`, 'must not be negative');
  }

  if (typeof ign.timeouts?.httpTotal === 'number' && ign.timeouts.httpTotal > 0) {
    f.add(
      'warning',
      '/ignition/timeouts/httpTotal',
      'not applied: fetches are bounded per attempt and by their retry count',
    );
  }
  f.issues.push(...storageRefusals(cfg, positions));
  const ka = cfg.kernelArguments;
  if (nonEmpty(ka?.shouldExist) || nonEmpty(ka?.shouldNotExist)) {
    f.add(
      'error',
      '/kernelArguments',
      'changing kernel arguments (kernelArguments) is not supported by flotilla',
    );
  }

  const seen = new Map<string, string>();
  (cfg.storage?.files ?? []).forEach((file, i) => {
    const ptr = `/storage/files/${i}`;
    nodePath(f, file.path, ptr, seen);
    mode(f, file.mode, ptr);
    resource(f, file.contents, `${ptr}/contents`);
    (file.append ?? []).forEach((r, j) => resource(f, r, `${ptr}/append/${j}`));
    if (file.overwrite === true && file.contents?.source == null) {
      f.add('error', `${ptr}/overwrite`, 'overwrite must be false if contents.source is unspecified');
    }
  });
  (cfg.storage?.directories ?? []).forEach((d, i) => {
    nodePath(f, d.path, `/storage/directories/${i}`, seen);
    mode(f, d.mode, `/storage/directories/${i}`);
  });
  (cfg.storage?.links ?? []).forEach((l, i) => {
    const ptr = `/storage/links/${i}`;
    nodePath(f, l.path, ptr, seen);
    if (l.target == null || l.target === '') f.add('error', `${ptr}/target`, 'link target is required');
    else if (l.hard === true && !l.target.startsWith('/'))
      f.add('error', `${ptr}/target`, 'hard link target must be absolute');
  });

  const units = new Set<string>();
  (cfg.systemd?.units ?? []).forEach((u, i) => {
    const ptr = `/systemd/units/${i}`;
    try {
      validateUnitName(u.name);
    } catch (err) {
      if (!isCode(err, 'E_UNIT_NAME')) throw err;
      f.add('error', `${ptr}/name`, err.message);
    }
    if (units.has(u.name)) f.add('error', `${ptr}/name`, `duplicate unit ${u.name}`);
    units.add(u.name);
    if (u.mask === true && u.enabled === true)
      f.add('error', `${ptr}/mask`, `${u.name} cannot be masked and enabled at once`);
    if (u.mask === true && u.contents != null)
      f.add('warning', `${ptr}/mask`, 'unit is masked: its contents have no effect');
    const dropins = new Set<string>();
    (u.dropins ?? []).forEach((d, j) => {
      const dp = `${ptr}/dropins/${j}`;
      if (!/^[^/\0]+\.conf$/.test(d.name))
        f.add(
          'error',
          `${dp}/name`,
          `invalid drop-in name ${JSON.stringify(d.name)}: must end in .conf and contain no "/"`,
        );
      if (dropins.has(d.name)) f.add('error', `${dp}/name`, `duplicate drop-in ${d.name}`);
      dropins.add(d.name);
    });
  });

  const users = new Set<string>();
  (cfg.passwd?.users ?? []).forEach((u, i) => {
    const ptr = `/passwd/users/${i}`;
    if (!/^[a-z_][a-z0-9_.-]*\$?$/i.test(u.name) || u.name.length > 32)
      f.add('error', `${ptr}/name`, `invalid user name ${JSON.stringify(u.name)}`);
    if (users.has(u.name)) f.add('error', `${ptr}/name`, `duplicate user ${u.name}`);
    users.add(u.name);
    if (u.shouldExist === false)
      f.add(
        'error',
        `${ptr}/shouldExist`,
        'deleting users (shouldExist: false) is not supported by flotilla',
      );
    if (u.homeDir != null && !u.homeDir.startsWith('/'))
      f.add('error', `${ptr}/homeDir`, 'path not absolute');
  });
  const groups = new Set<string>();
  (cfg.passwd?.groups ?? []).forEach((g, i) => {
    const ptr = `/passwd/groups/${i}`;
    if (!/^[a-z_][a-z0-9_.-]*\$?$/i.test(g.name) || g.name.length > 32)
      f.add('error', `${ptr}/name`, `invalid group name ${JSON.stringify(g.name)}`);
    if (groups.has(g.name)) f.add('error', `${ptr}/name`, `duplicate group ${g.name}`);
    groups.add(g.name);
    if (g.shouldExist === false)
      f.add(
        'error',
        `${ptr}/shouldExist`,
        'deleting groups (shouldExist: false) is not supported by flotilla',
      );
  });
  return f.issues;
}
