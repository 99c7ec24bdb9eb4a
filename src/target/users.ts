/**
 * Users and groups through shadow-utils, with `--root ROOT` when the target is not `/`, as argv
 * arrays. Password hashes go to `chpasswd -e` / `chgpasswd -e` on stdin (`name:hash`), never into
 * argv, a log line or an error message.
 *
 * A user or group is never duplicated: the target's /etc/passwd and /etc/group decide whether it
 * exists. An existing user only gets its password hash (when it differs from /etc/shadow) and the
 * supplementary groups it lacks (`usermod --append --groups`); creation-time fields are ignored, as
 * coreos-cloudinit does. A new user gets `useradd` with every field given; its own group is created
 * explicitly (`--user-group`) unless it names a primary group or asks for none, so the result does
 * not depend on the target's login.defs.
 */
import { FlotillaError } from '../lib/errors.js';
import type { Run } from './exec.js';
import { readAccounts, readHash } from './passwd.js';
import type { GroupAction, UserAction } from './types.js';

function rootArgs(root: string): string[] {
  return root === '/' ? [] : ['--root', root];
}

async function tool(
  run: Run,
  reason: string,
  file: string,
  args: string[],
  stdin?: string,
  secret?: string,
): Promise<void> {
  const r = await run(file, args, stdin === undefined ? {} : { stdin });
  if (r.code === 0) return;
  let why = r.error === 'ENOENT' ? `${file} is not installed` : (r.error ?? `exit status ${r.code}`);
  let err = r.stderr.trim();
  if (secret) err = err.split(secret).join('<hash>');
  if (err) why += `: ${err.split('\n').slice(0, 3).join('; ')}`;
  throw new FlotillaError('E_TARGET', `${reason}: ${file} failed: ${why}`, { reason, tool: file });
}

/** The useradd argv (without the tool name) for a new user. Exported for tests. */
export function useraddArgs(root: string, u: UserAction): string[] {
  const args = rootArgs(root);
  if (u.uid !== undefined) args.push('--uid', String(u.uid));
  if (u.gecos !== undefined) args.push('--comment', u.gecos);
  if (u.homeDir !== undefined) args.push('--home-dir', u.homeDir);
  args.push(u.noCreateHome ? '--no-create-home' : '--create-home');
  if (u.primaryGroup !== undefined) args.push('--gid', u.primaryGroup);
  else args.push(u.noUserGroup ? '--no-user-group' : '--user-group');
  if (u.groups?.length) args.push('--groups', u.groups.join(','));
  if (u.noLogInit) args.push('--no-log-init');
  if (u.shell !== undefined) args.push('--shell', u.shell);
  if (u.system) args.push('--system');
  args.push('--', u.name);
  return args;
}

/** Creates or updates a group; true when the target changed. */
export async function applyGroup(root: string, g: GroupAction, run: Run, reason: string): Promise<boolean> {
  let changed = false;
  if (!readAccounts(root).groups.has(g.name)) {
    const args = rootArgs(root);
    if (g.gid !== undefined) args.push('--gid', String(g.gid));
    if (g.system) args.push('--system');
    args.push('--', g.name);
    await tool(run, reason, 'groupadd', args);
    changed = true;
  }
  if (g.passwordHash !== undefined && readHash(root, 'gshadow', g.name) !== g.passwordHash) {
    await tool(
      run,
      reason,
      'chgpasswd',
      ['-e', ...rootArgs(root)],
      `${g.name}:${g.passwordHash}\n`,
      g.passwordHash,
    );
    changed = true;
  }
  return changed;
}

/** Creates or updates a user; true when the target changed. */
export async function applyUser(root: string, u: UserAction, run: Run, reason: string): Promise<boolean> {
  const accounts = readAccounts(root);
  let changed = false;
  if (!accounts.users.has(u.name)) {
    await tool(run, reason, 'useradd', useraddArgs(root, u));
    changed = true;
  } else if (u.groups?.length) {
    const missing = u.groups.filter((g) => !accounts.groups.get(g)?.members.includes(u.name));
    const primary = accounts.users.get(u.name)!.gid;
    const lacking = missing.filter((g) => accounts.groups.get(g)?.gid !== primary);
    if (lacking.length > 0) {
      await tool(run, reason, 'usermod', [
        ...rootArgs(root),
        '--append',
        '--groups',
        lacking.join(','),
        '--',
        u.name,
      ]);
      changed = true;
    }
  }
  if (u.passwordHash !== undefined && readHash(root, 'shadow', u.name) !== u.passwordHash) {
    await tool(
      run,
      reason,
      'chpasswd',
      ['-e', ...rootArgs(root)],
      `${u.name}:${u.passwordHash}\n`,
      u.passwordHash,
    );
    changed = true;
  }
  return changed;
}
