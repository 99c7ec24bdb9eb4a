/**
 * Users, groups and authorized keys through the real shadow-utils (useradd/usermod/groupadd/
 * chpasswd/chgpasswd --root) in a temporary root: creation with every field, existing users get
 * only hash/groups/keys, no duplicates on re-apply, hashes only ever on stdin (never argv, logs or
 * errors), and update-ssh-keys' authorized_keys.d semantics.
 */
import { lstatSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyPlan } from '../../../src/target/apply.js';
import { runArgv, type Run } from '../../../src/target/exec.js';
import { KEYS_HEADER, mergeSets } from '../../../src/target/keys.js';
import type { PlannedAction } from '../../../src/target/types.js';
import { recorder } from '../datasource/log-recorder.js';
import { makeRoot, targetError, why, type TestRoot } from './root.js';

const HASH =
  '$6$rounds=4096$saltsalt$Zq0pVYC3D9pbIs4F2uW6WkNeTNqOwNp0Gx2gYzZmN0oZKXH0bYkEJr8bLJYzQ5R6p7Eq6B4KSy0xk1GmX2sV1.';
const HASH2 =
  '$6$othersalt$AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU/.';
const KEY1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl one@example';
const KEY2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBfT3Ez8l4Kq0HnJq3Lh2cKpGf2DqjC9xZ3wz1nVb4zR two@example';
const KEY3 = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7kDm4Q2gO7d3v three@example';

let r: TestRoot;
let calls: { file: string; args: string[]; stdin: string }[];
const run: Run = (file, args, opts) => {
  calls.push({ file, args: [...args], stdin: String(opts?.stdin ?? '') });
  return runArgv(file, args, opts);
};
beforeEach(() => {
  r = makeRoot();
  calls = [];
});
afterEach(() => r.cleanup());

const line = (t: TestRoot, file: string, name: string): string | undefined =>
  t
    .read(`etc/${file}`)
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));

describe.skipIf(why)('users and groups', () => {
  it('creates a user with every field through useradd --root, the hash only through chpasswd stdin', async () => {
    const log = recorder();
    const plan: PlannedAction[] = [
      { reason: 'groups[0]', action: { kind: 'group', name: 'ops', gid: 2000 } },
      {
        reason: 'users[0]',
        action: {
          kind: 'user',
          name: 'core',
          uid: 1500,
          gecos: 'CoreOS Admin',
          homeDir: '/home/core',
          groups: ['sudo', 'ops'],
          shell: '/bin/bash',
          passwordHash: HASH,
        },
      },
    ];
    const res = await applyPlan(plan, { root: r.dir, live: false, log, run });
    expect(res.changed).toHaveLength(2);
    expect(line(r, 'passwd', 'core')).toBe('core:x:1500:1500:CoreOS Admin:/home/core:/bin/bash');
    expect(line(r, 'group', 'core')).toBe('core:x:1500:');
    expect(line(r, 'group', 'ops')).toBe('ops:x:2000:core');
    expect(line(r, 'group', 'sudo')).toBe('sudo:x:27:core');
    expect(line(r, 'shadow', 'core')?.split(':')[1]).toBe(HASH);
    const home = statSync(r.at('home/core'));
    expect([home.isDirectory(), home.uid, home.gid]).toEqual([true, 1500, 1500]);
    expect(calls.map((c) => c.file)).toEqual(['groupadd', 'useradd', 'chpasswd']);
    expect(calls[1]!.args).toEqual([
      '--root',
      r.dir,
      '--uid',
      '1500',
      '--comment',
      'CoreOS Admin',
      '--home-dir',
      '/home/core',
      '--create-home',
      '--user-group',
      '--groups',
      'sudo,ops',
      '--shell',
      '/bin/bash',
      '--',
      'core',
    ]);
    expect(calls[2]).toEqual({ file: 'chpasswd', args: ['-e', '--root', r.dir], stdin: `core:${HASH}\n` });
    for (const c of calls) expect(c.args.join(' ')).not.toContain('$6$');
    expect(log.text()).not.toContain('$6$');
    expect(log.text()).toContain('users[0]');
  });

  it('re-applying never duplicates a user or a group and changes nothing', async () => {
    const plan: PlannedAction[] = [
      { reason: 'g', action: { kind: 'group', name: 'ops', passwordHash: HASH2 } },
      { reason: 'u', action: { kind: 'user', name: 'core', groups: ['ops'], passwordHash: HASH } },
    ];
    await applyPlan(plan, { root: r.dir, live: false, run });
    const snap = r.snapshot();
    calls = [];
    const res = await applyPlan(plan, { root: r.dir, live: false, run });
    expect(res.changed).toEqual([]);
    expect(calls).toEqual([]);
    expect(r.snapshot()).toBe(snap);
    expect(r.read('etc/passwd').match(/^core:/gm)).toHaveLength(1);
    expect(r.read('etc/group').match(/^ops:/gm)).toHaveLength(1);
    expect(line(r, 'gshadow', 'ops')?.split(':')[1]).toBe(HASH2);
  });

  it('an existing user only gets its hash and missing groups; creation fields are ignored', async () => {
    const plan: PlannedAction[] = [
      {
        reason: 'users[0]',
        action: {
          kind: 'user',
          name: 'www-data',
          uid: 7777,
          shell: '/bin/zsh',
          homeDir: '/elsewhere',
          groups: ['adm'],
          passwordHash: HASH,
        },
      },
    ];
    const res = await applyPlan(plan, { root: r.dir, live: false, run });
    expect(res.changed).toHaveLength(1);
    expect(calls.map((c) => c.file)).toEqual(['usermod', 'chpasswd']);
    expect(calls[0]!.args).toEqual(['--root', r.dir, '--append', '--groups', 'adm', '--', 'www-data']);
    expect(line(r, 'passwd', 'www-data')).toBe('www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin');
    expect(line(r, 'group', 'adm')).toBe('adm:x:4:www-data');
    expect(line(r, 'shadow', 'www-data')?.split(':')[1]).toBe(HASH);
  });

  it('primary group, no user group, system user and no home map onto useradd flags', async () => {
    await applyPlan(
      [
        {
          reason: 'a',
          action: {
            kind: 'user',
            name: 'svc',
            primaryGroup: 'daemon',
            noCreateHome: true,
            system: true,
            noLogInit: true,
          },
        },
        { reason: 'b', action: { kind: 'user', name: 'plain', noUserGroup: true, noCreateHome: true } },
      ],
      { root: r.dir, live: false, run },
    );
    expect(calls[0]!.args).toEqual([
      '--root',
      r.dir,
      '--no-create-home',
      '--gid',
      'daemon',
      '--no-log-init',
      '--system',
      '--',
      'svc',
    ]);
    expect(line(r, 'passwd', 'svc')?.split(':')[3]).toBe('1');
    expect(line(r, 'group', 'svc')).toBeUndefined();
    expect(line(r, 'group', 'plain')).toBeUndefined();
    expect(r.exists('home/plain')).toBe(false);
  });

  it('a file may be owned by a user and group created earlier in the same plan', async () => {
    await applyPlan(
      [
        { reason: 'users[0]', action: { kind: 'user', name: 'app', uid: 3100 } },
        {
          reason: 'write_files[0]',
          action: {
            kind: 'file',
            path: '/etc/app.conf',
            contents: Buffer.from('x'),
            mode: 0o600,
            owner: { user: 'app', group: 'app' },
          },
        },
      ],
      { root: r.dir, live: false, run },
    );
    const st = statSync(r.at('etc/app.conf'));
    expect([st.uid, st.gid]).toEqual([3100, 3100]);
  });

  it('bad names and fields are refused before any tool runs', async () => {
    const bad: [PlannedAction['action'], RegExp][] = [
      [{ kind: 'user', name: '-rf' }, /users: name: user name "-rf" is not a valid name/],
      [{ kind: 'user', name: 'a:b' }, /name: user name/],
      [{ kind: 'user', name: 'x', gecos: 'two\nlines' }, /gecos: must not contain/],
      [{ kind: 'user', name: 'x', passwordHash: 'a:b' }, /passwordHash: must not contain/],
      [{ kind: 'user', name: 'x', groups: ['nosuch'] }, /groups\[0\]: no group nosuch/],
      [{ kind: 'user', name: 'x', primaryGroup: 'nosuch' }, /primaryGroup: no group nosuch/],
      [{ kind: 'user', name: 'x', shell: 'bash' }, /shell: must be an absolute path/],
      [{ kind: 'group', name: '1234' }, /group name "1234"/],
      [{ kind: 'authorized-keys', user: 'ghost', setName: 'x', keys: [] }, /user: no user ghost/],
      [{ kind: 'authorized-keys', user: 'root', setName: '../x', keys: [] }, /setName: key set name/],
      [
        { kind: 'authorized-keys', user: 'root', setName: 'x', keys: ['a\nb'] },
        /keys\[0\]: must be a single line/,
      ],
    ];
    const before = r.snapshot();
    for (const [action, msg] of bad) {
      const err = await targetError(
        applyPlan([{ reason: 'users', action }], { root: r.dir, live: false, run }),
      );
      expect(err.message).toMatch(msg);
      expect(err.message).not.toContain('$6$');
    }
    expect(calls).toEqual([]);
    expect(r.snapshot()).toBe(before);
  });

  it('a failing tool is an E_TARGET naming the reason, with the hash redacted', async () => {
    // A live lock on the target's shadow file (shadow-utils' <file>.lock holding a running pid).
    writeFileSync(r.at('etc/shadow.lock'), String(process.pid));
    const log = recorder();
    const err = await targetError(
      applyPlan([{ reason: 'users[3]', action: { kind: 'user', name: 'daemon', passwordHash: HASH } }], {
        root: r.dir,
        live: false,
        run,
        log,
      }),
    );
    expect(err.message).toMatch(/^users\[3\]: chpasswd failed/);
    expect(err.message).not.toContain(HASH);
    expect(log.text()).not.toContain('$6$');
  });
});

describe.skipIf(why)('authorized keys (update-ssh-keys semantics)', () => {
  const keys = (set: string, k: string[], user = 'core'): PlannedAction => ({
    reason: `ssh_authorized_keys ${set}`,
    action: { kind: 'authorized-keys', user, setName: set, keys: k },
  });
  const core: PlannedAction = { reason: 'users[0]', action: { kind: 'user', name: 'core', uid: 1500 } };

  it('writes the set and regenerates authorized_keys, owned by the user, 0700/0600', async () => {
    const log = recorder();
    await applyPlan([core, keys('coreos-cloudinit', [` ${KEY1} `, KEY2, KEY1])], {
      root: r.dir,
      live: false,
      run,
      log,
    });
    expect(r.read('home/core/.ssh/authorized_keys.d/coreos-cloudinit')).toBe(`${KEY1}\n${KEY2}\n`);
    expect(r.read('home/core/.ssh/authorized_keys')).toBe(`${KEYS_HEADER}\n${KEY1}\n${KEY2}\n`);
    for (const [p, mode] of [
      ['home/core/.ssh', 0o700],
      ['home/core/.ssh/authorized_keys.d', 0o700],
      ['home/core/.ssh/authorized_keys.d/coreos-cloudinit', 0o600],
      ['home/core/.ssh/authorized_keys', 0o600],
    ] as const) {
      const st = lstatSync(r.at(p));
      expect([p, st.mode & 0o7777, st.uid, st.gid]).toEqual([p, mode, 1500, 1500]);
    }
    expect(log.text()).not.toContain('AAAA');
  });

  it('keeps keys that were there before as old_authorized_keys, merges sets without duplicates', async () => {
    await applyPlan([core], { root: r.dir, live: false, run });
    mkdirSync(r.at('home/core/.ssh'), { mode: 0o700 });
    writeFileSync(r.at('home/core/.ssh/authorized_keys'), `# by hand\n${KEY3}\n${KEY1}\n`);
    const plan = [keys('coreos-cloudinit', [KEY1, KEY2]), keys('ignition', [KEY2])];
    await applyPlan(plan, { root: r.dir, live: false, run });
    expect(readdirSync(r.at('home/core/.ssh/authorized_keys.d')).sort()).toEqual([
      'coreos-cloudinit',
      'ignition',
      'old_authorized_keys',
    ]);
    expect(r.read('home/core/.ssh/authorized_keys.d/old_authorized_keys')).toBe(
      `# by hand\n${KEY3}\n${KEY1}\n`,
    );
    const merged = r.read('home/core/.ssh/authorized_keys');
    expect(merged).toBe(`${KEYS_HEADER}\n${KEY1}\n${KEY2}\n# by hand\n${KEY3}\n`);
    for (const k of [KEY1, KEY2, KEY3]) expect(merged.split(k)).toHaveLength(2);
    // Re-applying: nothing changes, nothing is rewritten, no key appears twice.
    const snap = r.snapshot();
    const res = await applyPlan(plan, { root: r.dir, live: false, run });
    expect(res.changed).toEqual([]);
    expect(r.snapshot()).toBe(snap);
  });

  it('replacing a set drops its old keys; a disabled (empty) set is left alone', async () => {
    await applyPlan([core, keys('coreos-cloudinit', [KEY1])], { root: r.dir, live: false, run });
    writeFileSync(r.at('home/core/.ssh/authorized_keys.d/disabled'), '');
    await applyPlan([keys('coreos-cloudinit', [KEY2]), keys('disabled', [KEY3])], {
      root: r.dir,
      live: false,
      run,
    });
    expect(r.read('home/core/.ssh/authorized_keys')).toBe(`${KEYS_HEADER}\n${KEY2}\n`);
    expect(r.read('home/core/.ssh/authorized_keys.d/disabled')).toBe('');
  });

  it('refuses a ~/.ssh that is a symlink (nothing written through it)', async () => {
    await applyPlan([core], { root: r.dir, live: false, run });
    mkdirSync(r.at('etc/sshtrap'));
    const { symlinkSync } = await import('node:fs');
    symlinkSync('/etc/sshtrap', r.at('home/core/.ssh'));
    const err = await targetError(applyPlan([keys('x', [KEY1])], { root: r.dir, live: false, run }));
    expect(err.message).toMatch(/\.ssh exists and is not a directory \(or is a symlink\)/);
    expect(readdirSync(r.at('etc/sshtrap'))).toEqual([]);
  });

  it('mergeSets orders sets by name and adds a final newline to a set without one', () => {
    expect(
      mergeSets([
        { name: 'b', text: KEY2 },
        { name: 'a', text: `${KEY1}\n` },
      ]),
    ).toBe(`${KEYS_HEADER}\n${KEY1}\n${KEY2}\n`);
  });
});
