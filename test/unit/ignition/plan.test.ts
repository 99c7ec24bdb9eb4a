/**
 * The planner (pure): config + fetched contents → actions with reasons. Defaults (0644 files,
 * 0755 directories, overwrite false → onlyIfAbsent), append fragments, owners by id or name,
 * links, units (enabled, mask, contents, drop-ins), users (every field) with the `ignition` key
 * set, groups; order (passwd first, nodes parents first, units last); and a refused config plans
 * nothing because it never parses.
 */
import { describe, expect, it, vi } from 'vitest';
import { parseIgnition } from '../../../src/ignition/parse.js';
import { planIgnition } from '../../../src/ignition/plan.js';
import { resolveContents } from '../../../src/ignition/resources.js';

// Module loading and the ajv compile run on a shared, loaded machine: more than the 5 s default.
vi.setConfig({ testTimeout: 30_000 });

async function planOf(cfg: unknown) {
  const { config } = parseIgnition(JSON.stringify(cfg));
  return planIgnition(config, await resolveContents(config));
}

describe('planIgnition', () => {
  it('plans every kind with its reason, in Ignition order', async () => {
    const plan = await planOf({
      ignition: { version: '3.4.0' },
      storage: {
        files: [
          {
            path: '/etc/app/conf.d/a.conf',
            contents: { source: 'data:;base64,YT0xCg==' },
            mode: 384,
            user: { name: 'app' },
            group: { id: 50 },
          },
          { path: '/etc/motd', overwrite: true, contents: { source: 'data:,hi' } },
          { path: '/etc/hosts', append: [{ source: 'data:,10.0.0.1%20a%0A' }] },
          { path: '/var/empty-marker' },
        ],
        directories: [
          { path: '/etc/app' },
          { path: '/etc/app/conf.d', mode: 488, user: { id: 0, name: 'ignored-when-id' } },
        ],
        links: [
          { path: '/usr/local/bin/app', target: '/opt/app/bin/app' },
          { path: '/etc/app/hard', target: '/etc/motd', hard: true },
        ],
      },
      systemd: {
        units: [
          {
            name: 'app.service',
            enabled: true,
            contents: '[Service]\nExecStart=/opt/app\n',
            dropins: [{ name: 'a.conf', contents: '[Service]\nNice=5\n' }, { name: 'empty.conf' }],
          },
          { name: 'cups.service', enabled: false },
          { name: 'telnet.socket', mask: true },
        ],
      },
      passwd: {
        users: [
          {
            name: 'core',
            passwordHash: '$6$abc',
            sshAuthorizedKeys: ['ssh-ed25519 AAAA one', 'ssh-ed25519 BBBB two'],
            uid: 1000,
            gecos: 'Core',
            homeDir: '/home/core',
            noCreateHome: false,
            primaryGroup: 'core',
            groups: ['sudo', 'docker'],
            noUserGroup: false,
            noLogInit: true,
            shell: '/bin/bash',
            system: false,
          },
          { name: 'app', system: true, noCreateHome: true },
        ],
        groups: [{ name: 'docker', gid: 233, system: true }],
      },
    });
    expect(plan.map((p) => p.reason)).toEqual([
      'passwd.groups[0] docker',
      'passwd.users[0] core',
      'passwd.users[0].sshAuthorizedKeys core',
      'passwd.users[1] app',
      // by path depth (parents first), then directories, files, links in config order
      'storage.directories[0] /etc/app',
      'storage.files[1] /etc/motd',
      'storage.files[2] /etc/hosts append[0]',
      'storage.files[3] /var/empty-marker',
      'storage.directories[1] /etc/app/conf.d',
      'storage.links[1] /etc/app/hard',
      'storage.files[0] /etc/app/conf.d/a.conf',
      'storage.links[0] /usr/local/bin/app',
      'systemd.units[0] app.service',
      'systemd.units[1] cups.service',
      'systemd.units[2] telnet.socket',
    ]);
    const by = (r: string) => plan.find((p) => p.reason === r)!.action;
    expect(by('passwd.users[0] core')).toEqual({
      kind: 'user',
      name: 'core',
      passwordHash: '$6$abc',
      uid: 1000,
      gecos: 'Core',
      homeDir: '/home/core',
      noCreateHome: false,
      primaryGroup: 'core',
      groups: ['sudo', 'docker'],
      noUserGroup: false,
      noLogInit: true,
      shell: '/bin/bash',
      system: false,
    });
    expect(by('passwd.users[0].sshAuthorizedKeys core')).toEqual({
      kind: 'authorized-keys',
      user: 'core',
      setName: 'ignition',
      keys: ['ssh-ed25519 AAAA one', 'ssh-ed25519 BBBB two'],
    });
    expect(by('passwd.groups[0] docker')).toEqual({ kind: 'group', name: 'docker', gid: 233, system: true });
    expect(by('storage.files[0] /etc/app/conf.d/a.conf')).toEqual({
      kind: 'file',
      path: '/etc/app/conf.d/a.conf',
      mode: 0o600,
      owner: { user: 'app', group: 50 },
      contents: Buffer.from('a=1\n'),
      onlyIfAbsent: true,
    });
    expect(by('storage.files[1] /etc/motd')).toEqual({
      kind: 'file',
      path: '/etc/motd',
      mode: 0o644,
      contents: Buffer.from('hi'),
    });
    expect(by('storage.files[2] /etc/hosts append[0]')).toEqual({
      kind: 'file',
      path: '/etc/hosts',
      mode: 0o644,
      contents: Buffer.from('10.0.0.1 a\n'),
      append: true,
    });
    expect(by('storage.files[3] /var/empty-marker')).toEqual({
      kind: 'file',
      path: '/var/empty-marker',
      mode: 0o644,
      contents: Buffer.alloc(0),
      onlyIfAbsent: true,
    });
    expect(by('storage.directories[0] /etc/app')).toEqual({
      kind: 'directory',
      path: '/etc/app',
      mode: 0o755,
    });
    expect(by('storage.directories[1] /etc/app/conf.d')).toEqual({
      kind: 'directory',
      path: '/etc/app/conf.d',
      mode: 0o750,
      owner: { user: 0 },
    });
    expect(by('storage.links[0] /usr/local/bin/app')).toEqual({
      kind: 'link',
      path: '/usr/local/bin/app',
      target: '/opt/app/bin/app',
      hard: false,
    });
    expect(by('storage.links[1] /etc/app/hard')).toMatchObject({ hard: true });
    expect(by('systemd.units[0] app.service')).toEqual({
      kind: 'unit',
      name: 'app.service',
      contents: '[Service]\nExecStart=/opt/app\n',
      dropIns: [{ name: 'a.conf', contents: '[Service]\nNice=5\n' }],
      enable: true,
      bootStart: true,
    });
    expect(by('systemd.units[1] cups.service')).toEqual({
      kind: 'unit',
      name: 'cups.service',
      enable: false,
    });
    expect(by('systemd.units[2] telnet.socket')).toEqual({ kind: 'unit', name: 'telnet.socket', mask: true });
  });

  it('contents plus append: the contents first, then each fragment', async () => {
    const plan = await planOf({
      ignition: { version: '3.1.0' },
      storage: {
        files: [
          {
            path: '/f',
            overwrite: true,
            contents: { source: 'data:,A' },
            append: [{ source: 'data:,B' }, { source: 'data:,C' }],
          },
        ],
      },
    });
    expect(
      plan.map((p) => [
        p.reason,
        p.action.kind === 'file' ? `${p.action.contents.toString()}${p.action.append ? '+' : ''}` : '',
      ]),
    ).toEqual([
      ['storage.files[0] /f', 'A'],
      ['storage.files[0] /f append[0]', 'B+'],
      ['storage.files[0] /f append[1]', 'C+'],
    ]);
  });

  it('a 2.x config plans as its translation (overwrite default true)', async () => {
    const plan = await planOf({
      ignition: { version: '2.2.0' },
      storage: {
        files: [{ filesystem: 'root', path: '/etc/x', mode: 420, contents: { source: 'data:,x' } }],
      },
      networkd: { units: [{ name: '00-eth.network', contents: '[Match]\n' }] },
    });
    expect(plan.map((p) => p.action)).toEqual([
      { kind: 'file', path: '/etc/x', mode: 0o644, contents: Buffer.from('x') },
      {
        kind: 'file',
        path: '/etc/systemd/network/00-eth.network',
        mode: 0o644,
        contents: Buffer.from('[Match]\n'),
      },
    ]);
  });

  it('is pure: the same input gives the same plan, and the config is not modified', async () => {
    const { config } = parseIgnition(
      JSON.stringify({
        ignition: { version: '3.4.0' },
        storage: { files: [{ path: '/a', contents: { source: 'data:,1' } }] },
      }),
    );
    const before = JSON.stringify(config);
    const contents = await resolveContents(config);
    expect(planIgnition(config, contents)).toEqual(planIgnition(config, contents));
    expect(JSON.stringify(config)).toBe(before);
  });
});
