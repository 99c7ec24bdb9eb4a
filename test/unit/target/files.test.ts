/**
 * The executor's files, directories and links in a real temporary root: atomic writes with mode
 * and owner (names from the target's passwd/group, not the host's), parents 0755 root, onlyIfAbsent,
 * append, idempotence (second apply: all unchanged, nothing touched), and escapes through ".." or
 * a symlink (nothing written, not even the actions before the bad one).
 */
import { chmodSync, lstatSync, mkdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyPlan } from '../../../src/target/apply.js';
import type { PlannedAction } from '../../../src/target/types.js';
import { makeRoot, targetError, why, type TestRoot } from './root.js';

let r: TestRoot;
beforeEach(() => {
  r = makeRoot();
});
afterEach(() => r.cleanup());

const file = (
  path: string,
  text: string,
  extra: object = {},
  reason = `write_files ${path}`,
): PlannedAction => ({
  reason,
  action: { kind: 'file', path, contents: Buffer.from(text), mode: 0o644, ...extra },
});

describe.skipIf(why)('files', () => {
  it('writes a file atomically with mode and parents 0755 root, leaving no temporary file', async () => {
    const res = await applyPlan([file('/opt/a/b/c.conf', 'hello\n', { mode: 0o640 })], {
      root: r.dir,
      live: false,
    });
    expect(res.changed).toHaveLength(1);
    expect(r.read('opt/a/b/c.conf')).toBe('hello\n');
    expect(statSync(r.at('opt/a/b/c.conf')).mode & 0o7777).toBe(0o640);
    for (const d of ['opt', 'opt/a', 'opt/a/b']) {
      const st = statSync(r.at(d));
      expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o755, 0, 0]);
    }
    expect(r.snapshot()).not.toMatch(/flotilla-/);
  });

  it('applies a mode the umask would strip (0666, 04755)', async () => {
    const old = process.umask(0o077);
    try {
      await applyPlan([file('/x', 'a', { mode: 0o666 }), file('/y', 'b', { mode: 0o4755 })], {
        root: r.dir,
        live: false,
      });
    } finally {
      process.umask(old);
    }
    expect(statSync(r.at('x')).mode & 0o7777).toBe(0o666);
    expect(statSync(r.at('y')).mode & 0o7777).toBe(0o4755);
  });

  it("resolves an owner by name from the target's passwd and group, not the host's", async () => {
    // www-data is 33 on Debian hosts too; "docker" is 998 in the target only. Move www-data so the
    // target's id differs from any host id.
    writeFileSync(r.at('etc/passwd'), r.read('etc/passwd').replace('www-data:x:33:33', 'www-data:x:4321:33'));
    await applyPlan([file('/srv/f', 'x', { owner: { user: 'www-data', group: 'docker' } })], {
      root: r.dir,
      live: false,
    });
    const st = statSync(r.at('srv/f'));
    expect([st.uid, st.gid]).toEqual([4321, 998]);
  });

  it('contents may be a plain Uint8Array (a view into a larger buffer)', async () => {
    const big = new TextEncoder().encode('xxhello\nyy');
    const view = big.subarray(2, 8);
    await applyPlan(
      [{ reason: 'ign', action: { kind: 'file', path: '/u8', contents: view as Buffer, mode: 0o644 } }],
      {
        root: r.dir,
        live: false,
      },
    );
    expect(r.read('u8')).toBe('hello\n');
    const again = await applyPlan(
      [{ reason: 'ign', action: { kind: 'file', path: '/u8', contents: view as Buffer, mode: 0o644 } }],
      {
        root: r.dir,
        live: false,
      },
    );
    expect(again.unchanged).toHaveLength(1);
  });

  it('numeric owners are taken as they are', async () => {
    await applyPlan([file('/f', 'x', { owner: { user: 1234, group: 5678 } })], { root: r.dir, live: false });
    const st = statSync(r.at('f'));
    expect([st.uid, st.gid]).toEqual([1234, 5678]);
  });

  it('refuses an owner the target does not have, naming the reason and field, and writes nothing', async () => {
    const before = r.snapshot();
    const err = await targetError(
      applyPlan([file('/ok', 'x'), file('/f', 'x', { owner: { user: 'nosuchuser' } }, 'write_files[1]')], {
        root: r.dir,
        live: false,
      }),
    );
    expect(err.message).toMatch(/^write_files\[1\]: owner\.user: no user nosuchuser/);
    expect(r.snapshot()).toBe(before);
  });

  it('second apply: every action unchanged, nothing rewritten (mtimes equal)', async () => {
    const plan: PlannedAction[] = [
      file('/etc/motd', 'hi\n'),
      file('/etc/app/env', 'A=1\n', { mode: 0o600, owner: { user: 'daemon', group: 'adm' } }),
      {
        reason: 'dir',
        action: { kind: 'directory', path: '/var/lib/app', mode: 0o750, owner: { user: 'daemon' } },
      },
      {
        reason: 'link',
        action: { kind: 'link', path: '/etc/app/current', target: '/etc/app/env', hard: false },
      },
      { reason: 'hard', action: { kind: 'link', path: '/etc/app/hard', target: '/etc/app/env', hard: true } },
      file('/etc/app/log', 'line\n', { append: true }),
      file('/etc/app/keep', 'first\n', { onlyIfAbsent: true }),
      { reason: 'hostname', action: { kind: 'hostname', hostname: 'node-1.example' } },
    ];
    const first = await applyPlan(plan, { root: r.dir, live: false });
    expect(first.changed).toHaveLength(plan.length);
    const snap = r.snapshot();
    await new Promise((res) => setTimeout(res, 20));
    const second = await applyPlan(plan, { root: r.dir, live: false });
    expect(second.changed).toEqual([]);
    expect(second.unchanged).toHaveLength(plan.length);
    expect(r.snapshot()).toBe(snap);
    expect(r.read('etc/hostname')).toBe('node-1.example\n');
    expect(readlinkSync(r.at('etc/app/current'))).toBe('/etc/app/env');
    expect(statSync(r.at('etc/app/hard')).ino).toBe(statSync(r.at('etc/app/env')).ino);
  });

  it('fixes a differing mode or owner in place without rewriting the bytes', async () => {
    await applyPlan([file('/f', 'same')], { root: r.dir, live: false });
    const ino = statSync(r.at('f')).ino;
    chmodSync(r.at('f'), 0o600);
    const res = await applyPlan([file('/f', 'same')], { root: r.dir, live: false });
    expect(res.changed).toHaveLength(1);
    expect(statSync(r.at('f')).mode & 0o7777).toBe(0o644);
    expect(statSync(r.at('f')).ino).toBe(ino);
  });

  it('replaces changed contents with a new inode (rename), never in place', async () => {
    await applyPlan([file('/f', 'one')], { root: r.dir, live: false });
    const ino = statSync(r.at('f')).ino;
    await applyPlan([file('/f', 'two')], { root: r.dir, live: false });
    expect(r.read('f')).toBe('two');
    expect(statSync(r.at('f')).ino).not.toBe(ino);
  });

  it('onlyIfAbsent keeps an existing file; append adds once and converges', async () => {
    writeFileSync(r.at('etc/keep'), 'mine\n');
    writeFileSync(r.at('etc/log'), 'old\n');
    const plan = [
      file('/etc/keep', 'theirs\n', { onlyIfAbsent: true }),
      file('/etc/log', 'new\n', { append: true }),
    ];
    const res = await applyPlan(plan, { root: r.dir, live: false });
    expect(res.unchanged.map((p) => p.action)).toEqual([plan[0]!.action]);
    expect(r.read('etc/keep')).toBe('mine\n');
    expect(r.read('etc/log')).toBe('old\nnew\n');
    await applyPlan(plan, { root: r.dir, live: false });
    expect(r.read('etc/log')).toBe('old\nnew\n');
  });

  it('a file replaces a symlink at its path instead of writing through it', async () => {
    writeFileSync(r.at('etc/real'), 'real\n');
    symlinkSync('/etc/real', r.at('etc/alias'));
    await applyPlan([file('/etc/alias', 'own\n')], { root: r.dir, live: false });
    expect(lstatSync(r.at('etc/alias')).isFile()).toBe(true);
    expect(r.read('etc/real')).toBe('real\n');
  });

  it('goes through a symlink that stays inside the root', async () => {
    mkdirSync(r.at('var/lib/data'), { recursive: true });
    symlinkSync('../var/lib/data', r.at('etc/data'));
    symlinkSync(`${r.dir}/var/lib`, r.at('lib'));
    await applyPlan([file('/etc/data/x', 'x'), file('/lib/data/y', 'y')], { root: r.dir, live: false });
    expect(r.read('var/lib/data/x')).toBe('x');
    expect(r.read('var/lib/data/y')).toBe('y');
  });

  it('a path may go through a directory and a symlink made earlier in the same plan', async () => {
    const plan: PlannedAction[] = [
      { reason: 'dir', action: { kind: 'directory', path: '/srv/real', mode: 0o755 } },
      { reason: 'link', action: { kind: 'link', path: '/srv/cur', target: 'real', hard: false } },
      file('/srv/cur/f', 'x'),
    ];
    await applyPlan(plan, { root: r.dir, live: false });
    expect(r.read('srv/real/f')).toBe('x');
  });
});

describe.skipIf(why)('escapes: refused before anything is written', () => {
  const cases: [string, (t: TestRoot) => void, string, RegExp][] = [
    ['".." above the root', () => undefined, '/../../../../tmp/escape', /climbs above the root/],
    ['".." inside a longer path', () => undefined, '/etc/../../escape', /climbs above the root/],
    [
      'a symlink to /etc',
      (t) => symlinkSync('/etc', t.at('evil')),
      '/evil/flotilla-escape-test',
      /\/evil is a symlink to \/etc, outside the root/,
    ],
    [
      'a relative symlink that climbs out',
      (t) => symlinkSync('../../../../../../etc', t.at('etc/up')),
      '/etc/up/flotilla-escape-test',
      /climbs above the root/,
    ],
    [
      'a symlinked parent directory two levels up',
      (t) => {
        mkdirSync(t.at('opt'));
        symlinkSync('/tmp', t.at('opt/tmp'));
      },
      '/opt/tmp/x/y',
      /outside the root/,
    ],
    ['a relative path', () => undefined, 'etc/relative', /must be absolute/],
  ];
  for (const [name, setup, path, msg] of cases) {
    it(name, async () => {
      setup(r);
      const before = r.snapshot();
      const plan = [
        file('/etc/first', 'earlier action\n', {}, 'write_files[0]'),
        {
          reason: 'units[0]',
          action: { kind: 'unit' as const, name: 'a.service', contents: '[Service]\nExecStart=/bin/true\n' },
        },
        file(path, 'x', {}, 'write_files[1]'),
      ];
      const err = await applyPlan(plan, { root: r.dir, live: false }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'E_TARGET' });
      expect((err as Error).message).toMatch(/^write_files\[1\]: path: /);
      expect((err as Error).message).toMatch(msg);
      expect(r.snapshot()).toBe(before);
      expect(r.exists('etc/first')).toBe(false);
    });
  }

  it('a symlink escape is refused for links, directories and hard-link targets too', async () => {
    symlinkSync('/etc', r.at('evil'));
    for (const action of [
      { kind: 'directory' as const, path: '/evil/d', mode: 0o755 },
      { kind: 'link' as const, path: '/evil/l', target: 'x', hard: false },
      { kind: 'link' as const, path: '/hl', target: '/evil/passwd', hard: true },
    ]) {
      const err = await targetError(applyPlan([{ reason: 'r', action }], { root: r.dir, live: false }));
      expect(err.message).toMatch(/outside the root/);
    }
    expect(r.exists('hl')).toBe(false);
  });

  it('a symlink made earlier in the plan that points out is refused at check time', async () => {
    const before = r.snapshot();
    const plan: PlannedAction[] = [
      { reason: 'link', action: { kind: 'link', path: '/out', target: '/etc', hard: false } },
      file('/out/x', 'x', {}, 'write_files[0]'),
    ];
    await expect(applyPlan(plan, { root: r.dir, live: false })).rejects.toThrow(
      /^write_files\[0\]: path: \/out is a symlink to \/etc, outside the root/,
    );
    expect(r.snapshot()).toBe(before);
  });

  it('a bad mode or a directory in the way is refused', async () => {
    mkdirSync(r.at('etc/dir'));
    await expect(
      applyPlan([file('/f', 'x', { mode: 0o10000 })], { root: r.dir, live: false }),
    ).rejects.toThrow(/: mode: /);
    await expect(applyPlan([file('/etc/dir', 'x')], { root: r.dir, live: false })).rejects.toThrow(
      /is a directory/,
    );
    await expect(applyPlan([file('/etc/passwd/x', 'x')], { root: r.dir, live: false })).rejects.toThrow(
      /\/etc\/passwd exists and is not a directory/,
    );
  });
});

describe.skipIf(why)('hostname', () => {
  it('writes /etc/hostname 0644 and refuses invalid names before writing anything', async () => {
    await applyPlan([{ reason: 'hostname', action: { kind: 'hostname', hostname: 'core-01' } }], {
      root: r.dir,
      live: false,
    });
    expect(r.read('etc/hostname')).toBe('core-01\n');
    expect(statSync(r.at('etc/hostname')).mode & 0o7777).toBe(0o644);
    const before = r.snapshot();
    for (const bad of ['-rf', 'a..b', 'with space', 'x'.repeat(65), '', 'under_score', 'semi;colon']) {
      const err = await targetError(
        applyPlan(
          [file('/etc/first', 'x'), { reason: 'hostname', action: { kind: 'hostname', hostname: bad } }],
          { root: r.dir, live: false },
        ),
      );
      expect(err.message).toMatch(/^hostname: hostname: invalid hostname/);
    }
    expect(r.snapshot()).toBe(before);
  });
});
