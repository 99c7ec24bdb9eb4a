/**
 * Spec 2.x accepted and translated to 3.x: files on the root filesystem (path kept, overwrite
 * made explicit, append), contents.source, user/group by id or name, units enable/enabled,
 * networkd units → files, users' deprecated `create`, `config.append` → merge; and the errors
 * (another filesystem, wrong types) with 2.x paths.
 */
import { describe, expect, it, vi } from 'vitest';
import { parseIgnition, validateIgnition } from '../../../src/ignition/parse.js';
import { formatIssue } from '../../../src/ignition/types.js';

// Module loading and the ajv compile run on a shared, loaded machine: more than the 5 s default.
vi.setConfig({ testTimeout: 30_000 });

describe('2.x translation', () => {
  for (const v of ['2.0.0', '2.1.0', '2.2.0', '2.3.0']) {
    it(`${v}: a minimal config translates to an empty 3.0 config`, () => {
      const p = parseIgnition(JSON.stringify({ ignition: { version: v } }));
      expect(p.version).toBe(v);
      expect(p.config).toEqual({ ignition: { version: '3.0.0' } });
    });
  }

  it('translates storage, systemd, networkd and passwd as Ignition did', () => {
    const cfg = {
      ignition: {
        version: '2.3.0',
        config: {
          append: [
            { source: 'http://127.0.0.1:1/x.ign', verification: { hash: 'sha512-' + 'a'.repeat(128) } },
          ],
        },
        timeouts: { httpResponseHeaders: 3 },
      },
      storage: {
        files: [
          {
            filesystem: 'root',
            path: '/etc/hostname',
            mode: 420,
            contents: { source: 'data:,node1' },
            user: { id: 0 },
            group: { name: 'root' },
          },
          {
            filesystem: 'root',
            path: '/etc/hosts',
            append: true,
            contents: { source: 'data:,10.0.0.2%20x' },
          },
          {
            filesystem: 'root',
            path: '/etc/keep',
            overwrite: false,
            contents: { source: 'data:,k', compression: 'gzip' },
          },
        ],
        directories: [{ filesystem: 'root', path: '/opt/app', mode: 493 }],
        links: [{ filesystem: 'root', path: '/etc/localtime', target: '/usr/share/zoneinfo/UTC' }],
      },
      systemd: {
        units: [
          { name: 'a.service', enable: true, contents: '[Service]\nExecStart=/bin/true\n' },
          {
            name: 'b.service',
            enabled: false,
            mask: true,
            dropins: [{ name: 'x.conf', contents: '[Unit]\n' }],
          },
        ],
      },
      networkd: {
        units: [
          {
            name: '10-eth0.network',
            contents: '[Match]\nName=eth0\n',
            dropins: [{ name: 'mtu.conf', contents: '[Link]\nMTUBytes=9000\n' }],
          },
        ],
      },
      passwd: {
        users: [
          {
            name: 'core',
            sshAuthorizedKeys: ['ssh-rsa AAA'],
            create: { uid: 1000, groups: ['sudo'], shell: '/bin/sh' },
          },
          { name: 'ops', passwordHash: '$6$x', groups: ['wheel'], homeDir: '/home/ops' },
        ],
        groups: [{ name: 'wheel', gid: 10 }],
      },
    };
    const p = parseIgnition(JSON.stringify(cfg));
    expect(p.warnings).toEqual([]);
    expect(p.config).toEqual({
      ignition: {
        version: '3.0.0',
        config: {
          merge: [
            { source: 'http://127.0.0.1:1/x.ign', verification: { hash: 'sha512-' + 'a'.repeat(128) } },
          ],
        },
        timeouts: { httpResponseHeaders: 3 },
      },
      storage: {
        files: [
          {
            path: '/etc/hostname',
            overwrite: true,
            mode: 420,
            contents: { source: 'data:,node1' },
            user: { id: 0 },
            group: { name: 'root' },
          },
          { path: '/etc/hosts', overwrite: false, append: [{ source: 'data:,10.0.0.2%20x' }] },
          { path: '/etc/keep', overwrite: false, contents: { source: 'data:,k', compression: 'gzip' } },
          {
            path: '/etc/systemd/network/10-eth0.network',
            overwrite: true,
            mode: 0o644,
            contents: { source: 'data:,%5BMatch%5D%0AName%3Deth0%0A' },
          },
          {
            path: '/etc/systemd/network/10-eth0.network.d/mtu.conf',
            overwrite: true,
            mode: 0o644,
            contents: { source: 'data:,%5BLink%5D%0AMTUBytes%3D9000%0A' },
          },
        ],
        directories: [{ path: '/opt/app', mode: 493 }],
        links: [{ path: '/etc/localtime', target: '/usr/share/zoneinfo/UTC' }],
      },
      systemd: {
        units: [
          { name: 'a.service', enabled: true, contents: '[Service]\nExecStart=/bin/true\n' },
          {
            name: 'b.service',
            enabled: false,
            mask: true,
            dropins: [{ name: 'x.conf', contents: '[Unit]\n' }],
          },
        ],
      },
      passwd: {
        users: [
          { name: 'core', uid: 1000, groups: ['sudo'], shell: '/bin/sh', sshAuthorizedKeys: ['ssh-rsa AAA'] },
          { name: 'ops', passwordHash: '$6$x', groups: ['wheel'], homeDir: '/home/ops' },
        ],
        groups: [{ name: 'wheel', gid: 10 }],
      },
    });
  });

  it('refuses files on another filesystem, and reports wrong types with 2.x paths', () => {
    const r = validateIgnition(
      JSON.stringify({
        ignition: { version: '2.2.0' },
        storage: {
          filesystems: [{ name: 'data', mount: { device: '/dev/vdb', format: 'ext4' } }],
          files: [{ filesystem: 'data', path: '/x', mode: '644' }],
        },
        systemd: { units: [{ name: 'a.service', enable: 'yes' }] },
      }),
    );
    expect(r.issues.map(formatIssue)).toEqual([
      expect.stringMatching(
        /^error at \$\.storage\.files\[0\]\.filesystem, line 1 col \d+: filesystem "data" is not supported: flotilla writes only to "root"$/,
      ),
      expect.stringMatching(/^error at \$\.storage\.files\[0\]\.mode, line 1 col \d+: must be integer$/),
      expect.stringMatching(/^error at \$\.systemd\.units\[0\]\.enable, line 1 col \d+: must be boolean$/),
    ]);
  });

  it('2.x filesystems that survive translation are refused by name', () => {
    expect(() =>
      parseIgnition(
        JSON.stringify({
          ignition: { version: '2.1.0' },
          storage: { filesystems: [{ name: 'data', mount: { device: '/dev/vdb', format: 'ext4' } }] },
        }),
      ),
    ).toThrow(
      /\$\.storage\.filesystems: creating or mounting filesystems \(storage\.filesystems\) is not supported/,
    );
  });

  it('unknown 2.x keys are warnings', () => {
    const p = parseIgnition(
      JSON.stringify({
        ignition: { version: '2.0.0' },
        systemd: { units: [{ name: 'a.service', bogus: 1 }] },
      }),
    );
    expect(p.warnings.map(formatIssue)).toEqual([
      expect.stringMatching(/^warning at \$\.systemd\.units\[0\]\.bogus, line 1 col \d+: unused key bogus$/),
    ]);
  });
});
