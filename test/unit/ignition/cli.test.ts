/**
 * `flotilla ignition-validate` (ignition-validate's output lines and exit codes) and `flotilla
 * ignition --stage …` through the real CLI entry, in-process. The files stage through the CLI
 * needs the real executor (src/target/apply.ts); that case runs once the executor is built.
 */
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { FIRST_BOOT_FLAG, RESULT_FILE } from '../../../src/ignition/firstboot.js';
import { applyPlan } from '../../../src/target/apply.js';

// Module loading and the ajv compile run on a shared, loaded machine: more than the 5 s default.
vi.setConfig({ testTimeout: 30_000 });

let dir: string;

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => (out += s), err: (s) => (err += s) }, {});
  return { code, out, err };
}

function file(name: string, body: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof body === 'string' ? body : JSON.stringify(body, null, 2));
  return p;
}

const executorBuilt = await applyPlan([], { root: tmpdir(), live: false }).then(
  () => true,
  (e: Error) => !/not built yet/.test(e.message),
);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-ign-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ignition-validate', () => {
  it('a valid config: no output, exit 0', async () => {
    const f = file('ok.ign', {
      ignition: { version: '3.4.0' },
      storage: { files: [{ path: '/etc/x', contents: { source: 'data:,x' } }] },
    });
    expect(await cli(['ignition-validate', f])).toEqual({ code: 0, out: '', err: '' });
  });
  it('warnings are printed, exit 0', async () => {
    const f = file('warn.ign', '{\n  "ignition": { "version": "3.0.0" },\n  "sytemd": {}\n}\n');
    expect(await cli(['ignition-validate', f])).toEqual({
      code: 0,
      out: '',
      err: 'warning at $.sytemd, line 3 col 13: unused key sytemd\n',
    });
  });
  it('errors with JSON paths and lines, exit 1', async () => {
    const f = file(
      'bad.ign',
      '{\n  "ignition": { "version": "3.2.0" },\n  "storage": {\n    "files": [{ "path": "/etc/a", "mode": "0644" }],\n    "disks": [{ "device": "/dev/vdb" }]\n  }\n}\n',
    );
    expect(await cli(['ignition-validate', f])).toEqual({
      code: 1,
      out: '',
      err: 'error at $.storage.files[0].mode, line 4 col 43: must be integer\n',
    });
    const g = file(
      'refused.ign',
      '{\n  "ignition": { "version": "3.2.0" },\n  "storage": {\n    "disks": [{ "device": "/dev/vdb" }]\n  }\n}\n',
    );
    expect(await cli(['ignition-validate', g])).toEqual({
      code: 1,
      out: '',
      err: 'error at $.storage.disks, line 4 col 14: partitioning disks (storage.disks) is not supported by flotilla\n',
    });
  });
  it('syntax errors and unsupported versions, exit 1', async () => {
    expect(await cli(['ignition-validate', file('syn.ign', '{"ignition": {"version": "3.4.0"},}')])).toEqual({
      code: 1,
      out: '',
      err: 'error at $, line 1 col 35: invalid JSON: unexpected character "}", expected a string key\n',
    });
    const r = await cli([
      'ignition-validate',
      file('v.ign', { ignition: { version: '3.5.0-experimental' } }),
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^error at \$\.ignition\.version, line 3 col 16: unsupported config version "3\.5\.0-experimental"/,
    );
  });
  it('a missing file is exit 1, no argument is a usage error', async () => {
    const r = await cli(['ignition-validate', join(dir, 'nope.ign')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot read .*nope\.ign/);
    expect((await cli(['ignition-validate'])).code).toBe(64);
  });
});

describe('ignition --stage', () => {
  it('usage errors for a bad stage or platform', async () => {
    expect((await cli(['ignition', '--stage=mount', '--platform=file'])).code).toBe(64);
    expect((await cli(['ignition', '--stage=fetch', '--platform=aws'])).code).toBe(64);
    expect((await cli(['ignition', '--stage=fetch', '--platform=file'])).err).toMatch(/needs --config/);
  });

  it('fetch caches the config 0600; disks has nothing to do; a non-first boot is skipped', async () => {
    const root = join(dir, 'root1');
    const run = join(dir, 'run1');
    mkdirSync(join(root, 'boot/flotilla'), { recursive: true });
    writeFileSync(join(root, FIRST_BOOT_FLAG), '');
    const cmdline = file('cmdline1', 'root=/dev/vda1\n');
    const cfg = file('user1.ign', {
      ignition: { version: '3.3.0' },
      storage: { directories: [{ path: '/opt/x' }] },
    });
    const common = [
      '--platform=file',
      `--config=${cfg}`,
      `--root=${root}`,
      `--run-dir=${run}`,
      `--cmdline=${cmdline}`,
    ];
    expect(await cli(['ignition', '--stage=fetch', ...common])).toMatchObject({
      code: 0,
      out: 'Ignition fetch stage done\n',
    });
    expect(statSync(join(run, 'flotilla/ignition.json')).mode & 0o777).toBe(0o600);
    expect(await cli(['ignition', '--stage=disks', ...common])).toMatchObject({
      code: 0,
      out: 'Ignition disks stage done\n',
    });
    rmSync(join(root, FIRST_BOOT_FLAG));
    expect(await cli(['ignition', '--stage=fetch', ...common])).toMatchObject({
      code: 0,
      out: `Ignition skipped: not the first boot (no ignition.firstboot kernel argument, no ${FIRST_BOOT_FLAG})\n`,
    });
  });

  it('--platform=auto takes ignition.platform.id= from the kernel command line', async () => {
    const root = join(dir, 'root-auto');
    const run = join(dir, 'run-auto');
    mkdirSync(root);
    const cfg = file('auto.ign', { ignition: { version: '3.3.0' } });
    const ok = file('cmdline-auto', 'root=/dev/vda ignition.firstboot ignition.platform.id=file\n');
    const args = (cmdline: string) => [
      'ignition',
      '--stage=fetch',
      '--platform=auto',
      `--config=${cfg}`,
      `--root=${root}`,
      `--run-dir=${run}`,
      `--cmdline=${cmdline}`,
    ];
    expect(await cli(args(ok))).toMatchObject({ code: 0, out: 'Ignition fetch stage done\n' });
    const bad = file('cmdline-aws', 'ignition.firstboot ignition.platform.id=aws\n');
    const r = await cli(args(bad));
    expect(r.code).toBe(64);
    expect(r.err).toContain('ignition.platform.id=aws');
  });

  it('a refused config: exit 1 naming the key, nothing cached', async () => {
    const root = join(dir, 'root2');
    const run = join(dir, 'run2');
    mkdirSync(root);
    const cmdline = file('cmdline2', 'ignition.firstboot\n');
    const cfg = file('user2.ign', {
      ignition: { version: '3.4.0' },
      storage: { luks: [{ name: 'x', device: '/dev/vdb' }] },
    });
    const r = await cli([
      'ignition',
      '--stage=fetch',
      '--platform=file',
      `--config=${cfg}`,
      `--root=${root}`,
      `--run-dir=${run}`,
      `--cmdline=${cmdline}`,
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /\$\.storage\.luks: creating LUKS volumes \(storage\.luks\) is not supported by flotilla/,
    );
    expect(existsSync(join(run, 'flotilla/ignition.json'))).toBe(false);
  });

  it.skipIf(!executorBuilt)(
    'files applies into --root and records the result; the second run does nothing',
    async () => {
      const root = join(dir, 'root3');
      const run = join(dir, 'run3');
      mkdirSync(join(root, 'etc'), { recursive: true });
      const cmdline = file('cmdline3', 'ignition.firstboot\n');
      const cfg = file('user3.ign', {
        ignition: { version: '3.4.0' },
        storage: {
          files: [{ path: '/etc/motd', mode: 0o640, contents: { source: 'data:;base64,aGVsbG8K' } }],
          directories: [{ path: '/opt/app' }],
          links: [{ path: '/opt/app/motd', target: '/etc/motd' }],
        },
        systemd: {
          units: [
            {
              name: 'hello.service',
              contents: '[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n',
              enabled: true,
            },
          ],
        },
      });
      const common = [
        '--platform=file',
        `--config=${cfg}`,
        `--root=${root}`,
        `--run-dir=${run}`,
        `--cmdline=${cmdline}`,
      ];
      for (const s of ['fetch', 'disks'])
        expect((await cli(['ignition', `--stage=${s}`, ...common])).code).toBe(0);
      const r = await cli(['ignition', '--stage=files', ...common]);
      expect(r).toMatchObject({ code: 0 });
      expect(readFileSync(join(root, 'etc/motd'), 'utf8')).toBe('hello\n');
      expect(statSync(join(root, 'etc/motd')).mode & 0o777).toBe(0o640);
      expect(readFileSync(join(root, 'etc/systemd/system/hello.service'), 'utf8')).toContain(
        'ExecStart=/bin/true',
      );
      expect(
        lstatSync(join(root, 'etc/systemd/system/multi-user.target.wants/hello.service')).isSymbolicLink(),
      ).toBe(true);
      expect(existsSync(join(root, RESULT_FILE))).toBe(true);
      expect((await cli(['ignition', '--stage=files', ...common])).out).toMatch(
        /^Ignition skipped: already provisioned/,
      );
    },
  );

  it.skipIf(!executorBuilt || process.getuid?.() !== 0)(
    'files creates groups, users (merged from a data: config) and the ignition key set with shadow-utils --root',
    async () => {
      const root = join(dir, 'root4');
      const run = join(dir, 'run4');
      mkdirSync(join(root, 'etc'), { recursive: true });
      mkdirSync(join(root, 'home'));
      writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
      writeFileSync(join(root, 'etc/group'), 'root:x:0:\nsudo:x:27:\n');
      writeFileSync(join(root, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o600 });
      writeFileSync(join(root, 'etc/gshadow'), 'root:*::\nsudo:*::\n', { mode: 0o600 });
      const cmdline = file('cmdline4', 'ignition.firstboot\n');
      const child = JSON.stringify({
        ignition: { version: '3.0.0' },
        passwd: { groups: [{ name: 'ops', gid: 2000 }] },
      });
      const cfg = file('user4.ign', {
        ignition: { version: '3.4.0', config: { merge: [{ source: `data:,${encodeURIComponent(child)}` }] } },
        passwd: {
          users: [
            {
              name: 'core',
              uid: 1500,
              groups: ['sudo', 'ops'],
              shell: '/bin/sh',
              passwordHash: '$6$abc$def',
              sshAuthorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq core@test'],
            },
          ],
        },
        storage: {
          files: [
            {
              path: '/home/core/.profile',
              user: { name: 'core' },
              contents: { source: 'data:,export%20A%3D1%0A' },
            },
          ],
        },
      });
      const common = [
        '--platform=file',
        `--config=${cfg}`,
        `--root=${root}`,
        `--run-dir=${run}`,
        `--cmdline=${cmdline}`,
      ];
      for (const s of ['fetch', 'disks', 'files'])
        expect((await cli(['ignition', `--stage=${s}`, ...common])).code).toBe(0);
      expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).toContain('core:x:1500:');
      expect(readFileSync(join(root, 'etc/group'), 'utf8')).toMatch(/^ops:x:2000:core$/m);
      expect(readFileSync(join(root, 'etc/group'), 'utf8')).toMatch(/^sudo:x:27:core$/m);
      expect(readFileSync(join(root, 'etc/shadow'), 'utf8')).toMatch(/^core:\$6\$abc\$def:/m);
      expect(readFileSync(join(root, 'home/core/.ssh/authorized_keys.d/ignition'), 'utf8')).toContain(
        'core@test',
      );
      expect(statSync(join(root, 'home/core/.profile')).uid).toBe(1500);
    },
  );
});
