/**
 * The target's account database, read from ROOT/etc/{passwd,group,shadow,gshadow} directly (never
 * the host's NSS): owners are resolved against the target, so `--root` trees get the target's ids.
 *
 * Also the name rules for users and groups, and owner resolution (`user`/`group` by name or id).
 * Hashes read from shadow/gshadow are compared, never logged or returned in an error.
 */
import { readFileSync } from 'node:fs';
import { isErrno } from '../lib/errors.js';
import { resolveInRoot, targetError } from './paths.js';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface Accounts {
  users: Map<string, PasswdEntry>;
  groups: Map<string, GroupEntry>;
}

/** Longest user or group name shadow-utils accepts by default (LOGIN_NAME_MAX-ish, utmp's 32). */
export const ACCOUNT_NAME_MAX = 32;

/**
 * shadow-utils' default rule (and Debian's adduser NAME_REGEX, relaxed for upper case as Ignition
 * allows): a letter or `_` first, then letters, digits, `_`, `.`, `-`, an optional trailing `$`
 * (Samba machine accounts). Not all digits (it would read as an id).
 */
const ACCOUNT_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/;

/** Why `name` is not a valid user/group name, or undefined. */
export function accountNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'must be a non-empty string';
  if (name.length > ACCOUNT_NAME_MAX) return `is longer than ${ACCOUNT_NAME_MAX} characters`;
  if (!ACCOUNT_NAME.test(name)) {
    return `${JSON.stringify(name)} is not a valid name (a letter or "_" first, then letters, digits, "_", ".", "-")`;
  }
  return undefined;
}

/** Why a passwd/group field value cannot be written (":" or a newline would break the file). */
export function fieldProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (/[:\n\r\0]/.test(value)) return 'must not contain ":", a newline or a NUL byte';
  return undefined;
}

/** Why an id is not usable (uid/gid: 0 … 2^32-2; 2^32-1 is (uid_t)-1). */
export function idProblem(id: unknown): string | undefined {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0xfffffffe) {
    return `must be an integer from 0 to ${0xfffffffe}`;
  }
  return undefined;
}

function readEtc(root: string, file: string): string {
  const r = resolveInRoot(root, `/etc/${file}`, 'target', `/etc/${file}`, { followFinal: true });
  try {
    return readFileSync(r.hostPath, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return '';
    throw err;
  }
}

function lines(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('+') && !l.startsWith('-'))
    .map((l) => l.split(':'));
}

/** Parses the target's /etc/passwd and /etc/group (missing files read as empty). */
export function readAccounts(root: string): Accounts {
  const users = new Map<string, PasswdEntry>();
  for (const f of lines(readEtc(root, 'passwd'))) {
    if (f.length < 7 || users.has(f[0]!)) continue;
    users.set(f[0]!, {
      name: f[0]!,
      uid: Number(f[2]),
      gid: Number(f[3]),
      gecos: f[4]!,
      home: f[5]!,
      shell: f[6]!,
    });
  }
  const groups = new Map<string, GroupEntry>();
  for (const f of lines(readEtc(root, 'group'))) {
    if (f.length < 4 || groups.has(f[0]!)) continue;
    groups.set(f[0]!, {
      name: f[0]!,
      gid: Number(f[2]),
      members: f[3] ? f[3].split(',').filter((m) => m !== '') : [],
    });
  }
  return { users, groups };
}

/** The password hash field of `name` in the target's shadow (or gshadow), undefined when absent. */
export function readHash(root: string, file: 'shadow' | 'gshadow', name: string): string | undefined {
  for (const f of lines(readEtc(root, file))) if (f[0] === name) return f[1];
  return undefined;
}

export type OwnerSpec = { user?: string | number; group?: string | number } | undefined;

/** Checks an owner against known names; `knows` says whether a user/group name exists or is planned. */
export function checkOwner(
  owner: OwnerSpec,
  reason: string,
  knowsUser: (n: string) => boolean,
  knowsGroup: (n: string) => boolean,
): void {
  if (owner === undefined) return;
  if (typeof owner !== 'object' || owner === null) throw targetError(reason, 'owner', 'must be an object');
  const { user, group } = owner;
  if (typeof user === 'number') {
    const p = idProblem(user);
    if (p) throw targetError(reason, 'owner.user', `uid ${p}`);
  } else if (user !== undefined) {
    const p = accountNameProblem(user);
    if (p) throw targetError(reason, 'owner.user', `user name ${p}`);
    if (!knowsUser(user))
      throw targetError(reason, 'owner.user', `no user ${user} in the target's /etc/passwd`);
  }
  if (typeof group === 'number') {
    const p = idProblem(group);
    if (p) throw targetError(reason, 'owner.group', `gid ${p}`);
  } else if (group !== undefined) {
    const p = accountNameProblem(group);
    if (p) throw targetError(reason, 'owner.group', `group name ${p}`);
    if (!knowsGroup(group)) {
      throw targetError(reason, 'owner.group', `no group ${group} in the target's /etc/group`);
    }
  }
}

/** Numeric uid/gid of an owner against the target's accounts; absent parts are root (0). */
export function resolveOwner(
  owner: OwnerSpec,
  accounts: Accounts,
  reason: string,
): { uid: number; gid: number } {
  let uid = 0;
  let gid = 0;
  const user = owner?.user;
  const group = owner?.group;
  if (typeof user === 'number') uid = user;
  else if (user !== undefined) {
    const e = accounts.users.get(user);
    if (!e) throw targetError(reason, 'owner.user', `no user ${user} in the target's /etc/passwd`);
    uid = e.uid;
  }
  if (typeof group === 'number') gid = group;
  else if (group !== undefined) {
    const e = accounts.groups.get(group);
    if (!e) throw targetError(reason, 'owner.group', `no group ${group} in the target's /etc/group`);
    gid = e.gid;
  }
  return { uid, gid };
}
