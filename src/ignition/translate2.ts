/**
 * Spec 2.x (2.0.0–2.3.0) → spec 3.0 shape, as Ignition's own translation (ign-converter) does it:
 *
 * - `ignition.config.append` → `merge`; `replace` stays;
 * - files, directories and links must be on the `root` filesystem (the only one 2.x predefines and
 *   the only one flotilla can write); `filesystem` is dropped, the path stays;
 * - files: `overwrite` defaulted true in 2.x, so it is made explicit; `append: true` turns the
 *   contents into one `append` fragment;
 * - `user`/`group` by id or by name (2.1+) stay as they are;
 * - `systemd.units[].enable` (deprecated) → `enabled`;
 * - `networkd.units` (removed in 3.x) → files under /etc/systemd/network (and `NAME.d/` drop-ins);
 * - `passwd.users[].create` (deprecated) → its fields on the user itself;
 * - disks, raid and filesystems are carried over so the refusal names them.
 *
 * Types are checked on the way; each problem is an Issue with the 2.x JSON path.
 */
import { pointerToPath, type Position } from './jsonpos.js';
import type { IgnitionConfig, Issue } from './types.js';

type Obj = Record<string, unknown>;

class Checker {
  readonly issues: Issue[] = [];
  constructor(private readonly positions?: Map<string, Position>) {}

  add(kind: Issue['kind'], ptr: string, message: string): void {
    const p = this.positions?.get(ptr);
    this.issues.push({ kind, path: pointerToPath(ptr), ...(p ? { line: p.line, col: p.col } : {}), message });
  }

  /** An object (or undefined when absent); warns about keys outside `known`. */
  obj(v: unknown, ptr: string, known: readonly string[]): Obj | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) {
      this.add('error', ptr, 'must be object');
      return undefined;
    }
    for (const k of Object.keys(v))
      if (!known.includes(k)) this.add('warning', `${ptr}/${k}`, `unused key ${k}`);
    return v as Obj;
  }

  list(v: unknown, ptr: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.add('error', ptr, 'must be array');
      return [];
    }
    return v;
  }

  scalar(
    o: Obj,
    key: string,
    ptr: string,
    type: 'string' | 'boolean' | 'integer',
    required = false,
  ): unknown {
    const v = o[key];
    if (v === undefined || v === null) {
      if (required) this.add('error', `${ptr}/${key}`, 'is required');
      return undefined;
    }
    const ok = type === 'integer' ? Number.isInteger(v) : typeof v === type;
    if (!ok) {
      this.add('error', `${ptr}/${key}`, `must be ${type}`);
      return undefined;
    }
    return v;
  }

  strings(o: Obj, key: string, ptr: string): string[] | undefined {
    if (o[key] === undefined || o[key] === null) return undefined;
    const out: string[] = [];
    this.list(o[key], `${ptr}/${key}`).forEach((s, i) => {
      if (typeof s === 'string') out.push(s);
      else this.add('error', `${ptr}/${key}/${i}`, 'must be string');
    });
    return out;
  }
}

/** Copy the defined scalar fields `keys` of `o` (checked as `type`) into `out`. */
function copy(
  c: Checker,
  o: Obj,
  ptr: string,
  out: Obj,
  type: 'string' | 'boolean' | 'integer',
  keys: string[],
): void {
  for (const k of keys) {
    const v = c.scalar(o, k, ptr, type);
    if (v !== undefined) out[k] = v;
  }
}

function resource(c: Checker, v: unknown, ptr: string, extra: string[] = []): Obj | undefined {
  const o = c.obj(v, ptr, ['source', 'verification', 'compression', ...extra]);
  if (!o) return undefined;
  const out: Obj = {};
  copy(c, o, ptr, out, 'string', ['source', ...(extra.includes('compression') ? ['compression'] : [])]);
  const ver = c.obj(o.verification, `${ptr}/verification`, ['hash']);
  if (ver) {
    const h = c.scalar(ver, 'hash', `${ptr}/verification`, 'string');
    out.verification = h === undefined ? {} : { hash: h };
  }
  return out;
}

function owner(c: Checker, v: unknown, ptr: string): Obj | undefined {
  const o = c.obj(v, ptr, ['id', 'name']);
  if (!o) return undefined;
  const out: Obj = {};
  copy(c, o, ptr, out, 'integer', ['id']);
  copy(c, o, ptr, out, 'string', ['name']);
  return out;
}

const NODE = ['filesystem', 'path', 'overwrite', 'user', 'group', 'mode'];

function node(c: Checker, o: Obj, ptr: string): Obj {
  const fs = c.scalar(o, 'filesystem', ptr, 'string', true);
  if (fs !== undefined && fs !== 'root') {
    c.add(
      'error',
      `${ptr}/filesystem`,
      `filesystem ${JSON.stringify(fs)} is not supported: flotilla writes only to "root"`,
    );
  }
  const out: Obj = {};
  copy(c, o, ptr, out, 'string', ['path']);
  if (o.path === undefined) c.add('error', `${ptr}/path`, 'is required');
  copy(c, o, ptr, out, 'boolean', ['overwrite']);
  const u = owner(c, o.user, `${ptr}/user`);
  if (u) out.user = u;
  const g = owner(c, o.group, `${ptr}/group`);
  if (g) out.group = g;
  return out;
}

function dataUrl(text: string): string {
  return `data:,${encodeURIComponent(text)}`;
}

/** Translate a parsed 2.x config; `version` is its `ignition.version`. */
export function translate2x(
  value: Obj,
  positions?: Map<string, Position>,
): { config: IgnitionConfig; issues: Issue[] } {
  const c = new Checker(positions);
  const top = c.obj(value, '', ['ignition', 'storage', 'systemd', 'networkd', 'passwd']) ?? {};
  const ign = c.obj(top.ignition, '/ignition', ['version', 'config', 'timeouts', 'security']) ?? {};
  const out: IgnitionConfig = { ignition: { version: '3.0.0' } };

  const cfg = c.obj(ign.config, '/ignition/config', ['append', 'replace']);
  if (cfg) {
    const merge = c
      .list(cfg.append, '/ignition/config/append')
      .map((r, i) => resource(c, r, `/ignition/config/append/${i}`))
      .filter((r): r is Obj => r !== undefined);
    const replace = resource(c, cfg.replace, '/ignition/config/replace');
    out.ignition.config = { ...(merge.length ? { merge } : {}), ...(replace ? { replace } : {}) };
  }
  const to = c.obj(ign.timeouts, '/ignition/timeouts', ['httpResponseHeaders', 'httpTotal']);
  if (to) {
    const t: Obj = {};
    copy(c, to, '/ignition/timeouts', t, 'integer', ['httpResponseHeaders', 'httpTotal']);
    out.ignition.timeouts = t;
  }
  const sec = c.obj(ign.security, '/ignition/security', ['tls']);
  const tls = sec && c.obj(sec.tls, '/ignition/security/tls', ['certificateAuthorities']);
  if (tls) {
    const cas = c
      .list(tls.certificateAuthorities, '/ignition/security/tls/certificateAuthorities')
      .map((r, i) => resource(c, r, `/ignition/security/tls/certificateAuthorities/${i}`) ?? {});
    out.ignition.security = { tls: { certificateAuthorities: cas } };
  }

  const st = c.obj(top.storage, '/storage', [
    'disks',
    'raid',
    'filesystems',
    'files',
    'directories',
    'links',
  ]);
  const storage: Obj = {};
  if (st) {
    for (const k of ['disks', 'raid', 'filesystems'] as const) {
      const l = c.list(st[k], `/storage/${k}`);
      if (l.length) storage[k] = l;
    }
    const files = c.list(st.files, '/storage/files').map((f, i) => {
      const ptr = `/storage/files/${i}`;
      const o = c.obj(f, ptr, [...NODE, 'contents', 'append']) ?? {};
      const n = node(c, o, ptr);
      copy(c, o, ptr, n, 'integer', ['mode']);
      n.overwrite = n.overwrite ?? true;
      const contents = resource(c, o.contents, `${ptr}/contents`, ['compression']);
      const append = c.scalar(o, 'append', ptr, 'boolean');
      if (append === true) {
        n.append = [contents ?? {}];
        n.overwrite = false;
      } else if (contents) n.contents = contents;
      return n;
    });
    const dirs = c.list(st.directories, '/storage/directories').map((d, i) => {
      const ptr = `/storage/directories/${i}`;
      const o = c.obj(d, ptr, NODE) ?? {};
      const n = node(c, o, ptr);
      copy(c, o, ptr, n, 'integer', ['mode']);
      return n;
    });
    const links = c.list(st.links, '/storage/links').map((l, i) => {
      const ptr = `/storage/links/${i}`;
      const o = c.obj(l, ptr, [...NODE.filter((k) => k !== 'mode'), 'target', 'hard']) ?? {};
      const n = node(c, o, ptr);
      copy(c, o, ptr, n, 'string', ['target']);
      if (o.target === undefined) c.add('error', `${ptr}/target`, 'is required');
      copy(c, o, ptr, n, 'boolean', ['hard']);
      return n;
    });
    if (files.length) storage.files = files;
    if (dirs.length) storage.directories = dirs;
    if (links.length) storage.links = links;
  }

  const nd = c.obj(top.networkd, '/networkd', ['units']);
  if (nd) {
    const files = (storage.files ??= []) as Obj[];
    c.list(nd.units, '/networkd/units').forEach((u, i) => {
      const ptr = `/networkd/units/${i}`;
      const o = c.obj(u, ptr, ['name', 'contents', 'dropins']) ?? {};
      const name = c.scalar(o, 'name', ptr, 'string', true) as string | undefined;
      const contents = c.scalar(o, 'contents', ptr, 'string') as string | undefined;
      if (name === undefined) return;
      if (contents !== undefined) {
        files.push({
          path: `/etc/systemd/network/${name}`,
          overwrite: true,
          mode: 0o644,
          contents: { source: dataUrl(contents) },
        });
      }
      c.list(o.dropins, `${ptr}/dropins`).forEach((d, j) => {
        const dp = `${ptr}/dropins/${j}`;
        const dobj = c.obj(d, dp, ['name', 'contents']) ?? {};
        const dn = c.scalar(dobj, 'name', dp, 'string', true) as string | undefined;
        const dc = c.scalar(dobj, 'contents', dp, 'string') as string | undefined;
        if (dn !== undefined && dc !== undefined) {
          files.push({
            path: `/etc/systemd/network/${name}.d/${dn}`,
            overwrite: true,
            mode: 0o644,
            contents: { source: dataUrl(dc) },
          });
        }
      });
    });
  }
  if (Object.keys(storage).length) out.storage = storage;

  const sd = c.obj(top.systemd, '/systemd', ['units']);
  if (sd) {
    const units = c.list(sd.units, '/systemd/units').map((u, i) => {
      const ptr = `/systemd/units/${i}`;
      const o = c.obj(u, ptr, ['name', 'enable', 'enabled', 'mask', 'contents', 'dropins']) ?? {};
      const n: Obj = {};
      copy(c, o, ptr, n, 'string', ['name', 'contents']);
      if (o.name === undefined) c.add('error', `${ptr}/name`, 'is required');
      copy(c, o, ptr, n, 'boolean', ['enabled', 'mask']);
      if (c.scalar(o, 'enable', ptr, 'boolean') === true) n.enabled = true;
      const dropins = c.list(o.dropins, `${ptr}/dropins`).map((d, j) => {
        const dp = `${ptr}/dropins/${j}`;
        const dobj = c.obj(d, dp, ['name', 'contents']) ?? {};
        const dn: Obj = {};
        copy(c, dobj, dp, dn, 'string', ['name', 'contents']);
        if (dobj.name === undefined) c.add('error', `${dp}/name`, 'is required');
        return dn;
      });
      if (dropins.length) n.dropins = dropins;
      return n;
    });
    if (units.length) out.systemd = { units: units as never };
  }

  const pw = c.obj(top.passwd, '/passwd', ['users', 'groups']);
  if (pw) {
    const userStr = ['gecos', 'homeDir', 'primaryGroup', 'shell'];
    const userBool = ['noCreateHome', 'noUserGroup', 'system', 'noLogInit'];
    const users = c.list(pw.users, '/passwd/users').map((u, i) => {
      const ptr = `/passwd/users/${i}`;
      const o =
        c.obj(u, ptr, [
          'name',
          'passwordHash',
          'sshAuthorizedKeys',
          'uid',
          'groups',
          'create',
          ...userStr,
          ...userBool,
        ]) ?? {};
      const n: Obj = {};
      const cr = c.obj(o.create, `${ptr}/create`, ['uid', 'groups', ...userStr, ...userBool]);
      for (const [src, p] of [
        [cr, `${ptr}/create`],
        [o, ptr],
      ] as const) {
        if (!src) continue;
        copy(c, src, p, n, 'integer', ['uid']);
        copy(c, src, p, n, 'string', userStr);
        copy(c, src, p, n, 'boolean', userBool);
        const g = c.strings(src, 'groups', p);
        if (g) n.groups = g;
      }
      copy(c, o, ptr, n, 'string', ['name', 'passwordHash']);
      if (o.name === undefined) c.add('error', `${ptr}/name`, 'is required');
      const keys = c.strings(o, 'sshAuthorizedKeys', ptr);
      if (keys) n.sshAuthorizedKeys = keys;
      return n;
    });
    const groups = c.list(pw.groups, '/passwd/groups').map((g, i) => {
      const ptr = `/passwd/groups/${i}`;
      const o = c.obj(g, ptr, ['name', 'gid', 'passwordHash', 'system']) ?? {};
      const n: Obj = {};
      copy(c, o, ptr, n, 'string', ['name', 'passwordHash']);
      if (o.name === undefined) c.add('error', `${ptr}/name`, 'is required');
      copy(c, o, ptr, n, 'integer', ['gid']);
      copy(c, o, ptr, n, 'boolean', ['system']);
      return n;
    });
    out.passwd = {
      ...(users.length ? { users: users as never } : {}),
      ...(groups.length ? { groups: groups as never } : {}),
    };
  }
  return { config: out, issues: c.issues };
}
