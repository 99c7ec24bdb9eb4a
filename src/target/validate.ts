/**
 * The whole-plan check that runs before anything is written (applyPlan step 1).
 *
 * Every action is checked in plan order against the target as it is plus what earlier actions of
 * the same plan will create (users, groups, directories, files, symlinks: the overlay), so an owner
 * may be a user created earlier in the plan and a path may go through a directory made earlier.
 * The first problem throws E_TARGET `REASON: FIELD: message`; names and paths only, never contents,
 * hashes or keys. Reads the target, writes nothing.
 */
import { readlinkSync } from 'node:fs';
import { FlotillaError } from '../lib/errors.js';
import { installLinks } from './install.js';
import { keyProblem, setNameProblem } from './keys.js';
import { accountNameProblem, checkOwner, fieldProblem, idProblem, readAccounts } from './passwd.js';
import {
  overlayKey,
  parentsOf,
  pathProblem,
  resolveInRoot,
  targetError,
  type Overlay,
  type Resolved,
} from './paths.js';
import type { PlannedAction, TargetAction, UnitAction, UserAction } from './types.js';
import { checkUnit, refuseMasked, unitDir, unitFileCandidates } from './units.js';

/** RFC 1123 labels, 64 bytes at most (HOST_NAME_MAX). */
const HOSTNAME =
  /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

interface State {
  root: string;
  overlay: Overlay;
  users: Map<string, { home: string | undefined }>;
  groups: Set<string>;
}

function plan(st: State, r: Resolved, node: 'dir' | 'file' | { symlink: string }): void {
  for (const p of parentsOf(r.targetPath)) {
    if (!st.overlay.has(overlayKey(p))) st.overlay.set(overlayKey(p), { type: 'dir' });
  }
  st.overlay.set(
    overlayKey(r.targetPath),
    typeof node === 'string' ? { type: node } : { type: 'symlink', target: node.symlink },
  );
}

function isDir(r: Resolved): boolean {
  return r.stat?.isDirectory() === true || (r.stat === undefined && r.planned?.type === 'dir');
}

function exists(r: Resolved): boolean {
  return r.stat !== undefined || r.planned !== undefined;
}

function checkMode(mode: unknown, reason: string): void {
  if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw targetError(reason, 'mode', 'must be an integer from 0 to 0o7777');
  }
}

function owner(
  st: State,
  a: { owner?: { user?: string | number; group?: string | number } },
  reason: string,
): void {
  checkOwner(
    a.owner,
    reason,
    (n) => st.users.has(n),
    (n) => st.groups.has(n),
  );
}

function resolve(st: State, path: unknown, reason: string, field: string, followFinal = false): Resolved {
  const p = pathProblem(path);
  if (p !== undefined) throw targetError(reason, field, `path ${p}`);
  return resolveInRoot(st.root, path as string, reason, field, { followFinal, overlay: st.overlay });
}

function checkUser(st: State, u: UserAction, reason: string): void {
  const n = accountNameProblem(u.name);
  if (n) throw targetError(reason, 'name', `user name ${n}`);
  if (u.uid !== undefined && idProblem(u.uid)) throw targetError(reason, 'uid', `uid ${idProblem(u.uid)}`);
  for (const [field, v] of [
    ['passwordHash', u.passwordHash],
    ['gecos', u.gecos],
    ['homeDir', u.homeDir],
    ['shell', u.shell],
  ] as const) {
    if (v === undefined) continue;
    const p = fieldProblem(v);
    if (p) throw targetError(reason, field, p);
  }
  for (const [field, v] of [
    ['homeDir', u.homeDir],
    ['shell', u.shell],
  ] as const) {
    if (v !== undefined && !v.startsWith('/'))
      throw targetError(reason, field, `must be an absolute path: ${v}`);
  }
  if (u.primaryGroup !== undefined) {
    const p = accountNameProblem(u.primaryGroup);
    if (p) throw targetError(reason, 'primaryGroup', `group name ${p}`);
    if (!st.groups.has(u.primaryGroup)) {
      throw targetError(reason, 'primaryGroup', `no group ${u.primaryGroup} in the target's /etc/group`);
    }
  }
  (u.groups ?? []).forEach((g, i) => {
    const p = accountNameProblem(g);
    if (p) throw targetError(reason, `groups[${i}]`, `group name ${p}`);
    if (!st.groups.has(g))
      throw targetError(reason, `groups[${i}]`, `no group ${g} in the target's /etc/group`);
  });
  if (st.users.has(u.name)) return; // existing: only hash and groups are applied
  st.users.set(u.name, { home: u.noCreateHome ? undefined : (u.homeDir ?? `/home/${u.name}`) });
  if (u.primaryGroup === undefined && !u.noUserGroup) st.groups.add(u.name);
  const home = st.users.get(u.name)!.home;
  if (home !== undefined) plan(st, resolve(st, home, reason, 'homeDir', true), 'dir');
}

function checkUnitPaths(st: State, a: UnitAction, reason: string): void {
  const dir = unitDir(a);
  const path = `${dir}/${a.name}`;
  const r = resolve(st, path, reason, 'name');
  if (isDir(r)) throw targetError(reason, 'name', `${path} is a directory`);
  if (a.mask) plan(st, r, { symlink: '/dev/null' });
  else if (a.contents !== undefined) plan(st, r, 'file');
  for (const d of a.dropIns ?? []) {
    const dr = resolve(st, `${path}.d/${d.name}`, reason, 'drop_ins');
    if (isDir(dr)) throw targetError(reason, 'drop_ins', `${path}.d/${d.name} is a directory`);
    plan(st, dr, 'file');
  }
  if (!a.enable || dir.endsWith('/network')) return;
  try {
    if (a.contents !== undefined) installLinks(a.name, a.contents, path, dir);
  } catch (err) {
    if (err instanceof FlotillaError && err.code === 'E_TARGET')
      throw targetError(reason, 'enable', err.message);
    throw err;
  }
  if (a.contents === undefined) {
    const found = unitFileCandidates(a.name).some((p) => {
      const l = resolve(st, p, reason, 'enable');
      // What the plan puts there wins over what is on disk now.
      const linkTarget = l.planned
        ? l.planned.type === 'symlink'
          ? l.planned.target
          : undefined
        : l.stat?.isSymbolicLink()
          ? readlinkSync(l.hostPath)
          : undefined;
      refuseMasked(a.name, p, reason, linkTarget);
      const c = resolve(st, p, reason, 'enable', true);
      return (c.stat?.isFile() ?? false) || (c.stat === undefined && c.planned?.type === 'file');
    });
    if (!found) throw targetError(reason, 'enable', `no unit file for ${a.name} in the target to enable`);
  }
}

function checkAction(st: State, a: TargetAction, reason: string): void {
  switch (a.kind) {
    case 'file': {
      checkMode(a.mode, reason);
      const raw: unknown = a.contents;
      if (!(raw instanceof Uint8Array))
        throw targetError(reason, 'contents', 'must be a Buffer or Uint8Array');
      const r = resolve(st, a.path, reason, 'path', a.append === true);
      if (isDir(r)) throw targetError(reason, 'path', `${a.path} is a directory`);
      owner(st, a, reason);
      plan(st, r, 'file');
      return;
    }
    case 'directory': {
      checkMode(a.mode, reason);
      const r = resolve(st, a.path, reason, 'path');
      if (exists(r) && !isDir(r))
        throw targetError(reason, 'path', `${a.path} exists and is not a directory`);
      owner(st, a, reason);
      plan(st, r, 'dir');
      return;
    }
    case 'link': {
      const r = resolve(st, a.path, reason, 'path');
      if (isDir(r)) throw targetError(reason, 'path', `${a.path} is a directory`);
      if (typeof a.target !== 'string' || a.target === '' || a.target.includes('\0')) {
        throw targetError(reason, 'target', 'must be a non-empty string without NUL');
      }
      if (a.hard) {
        const t = resolve(st, a.target, reason, 'target', true);
        if (!exists(t)) throw targetError(reason, 'target', `${a.target} does not exist`);
        if (isDir(t)) throw targetError(reason, 'target', `${a.target} is a directory`);
      }
      owner(st, a, reason);
      plan(st, r, a.hard ? 'file' : { symlink: a.target });
      return;
    }
    case 'user':
      checkUser(st, a, reason);
      return;
    case 'group': {
      const n = accountNameProblem(a.name);
      if (n) throw targetError(reason, 'name', `group name ${n}`);
      if (a.gid !== undefined && idProblem(a.gid))
        throw targetError(reason, 'gid', `gid ${idProblem(a.gid)}`);
      if (a.passwordHash !== undefined && fieldProblem(a.passwordHash)) {
        throw targetError(reason, 'passwordHash', fieldProblem(a.passwordHash)!);
      }
      st.groups.add(a.name);
      return;
    }
    case 'authorized-keys': {
      const n = accountNameProblem(a.user);
      if (n) throw targetError(reason, 'user', `user name ${n}`);
      const u = st.users.get(a.user);
      if (!u) throw targetError(reason, 'user', `no user ${a.user} in the target's /etc/passwd`);
      const s = setNameProblem(a.setName);
      if (s) throw targetError(reason, 'setName', `key set name ${s}`);
      if (!Array.isArray(a.keys)) throw targetError(reason, 'keys', 'must be an array of strings');
      a.keys.forEach((k, i) => {
        const p = keyProblem(k);
        if (p) throw targetError(reason, `keys[${i}]`, p);
      });
      if (u.home === undefined)
        throw targetError(reason, 'user', `${a.user} has no home directory for its keys`);
      const h = resolve(st, u.home, reason, 'user', true);
      if (!isDir(h))
        throw targetError(reason, 'user', `home directory ${u.home} of ${a.user} does not exist`);
      return;
    }
    case 'unit':
      checkUnit(a, reason);
      checkUnitPaths(st, a, reason);
      return;
    case 'hostname': {
      if (typeof a.hostname !== 'string' || a.hostname.length > 64 || !HOSTNAME.test(a.hostname)) {
        throw targetError(reason, 'hostname', `invalid hostname ${JSON.stringify(a.hostname)}`);
      }
      plan(st, resolve(st, '/etc/hostname', reason, 'hostname'), 'file');
      return;
    }
    default:
      throw targetError(
        reason,
        'kind',
        `unknown action kind ${JSON.stringify((a as { kind: unknown }).kind)}`,
      );
  }
}

/** Checks the whole plan against the target at `root` (a real path); throws on the first problem. */
export function checkPlan(planned: readonly PlannedAction[], root: string): void {
  const raw: unknown = planned;
  if (!Array.isArray(raw)) throw new FlotillaError('E_TARGET', 'the plan must be an array of actions');
  const accounts = readAccounts(root);
  const st: State = {
    root,
    overlay: new Map(),
    users: new Map([...accounts.users].map(([n, e]) => [n, { home: e.home }])),
    groups: new Set(accounts.groups.keys()),
  };
  planned.forEach((p, i) => {
    const reason = typeof p?.reason === 'string' && p.reason !== '' ? p.reason : `action ${i}`;
    if (typeof p?.action !== 'object' || p.action === null) throw targetError(reason, 'action', 'missing');
    checkAction(st, p.action, reason);
  });
}
