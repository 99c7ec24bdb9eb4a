/**
 * The url, proc-cmdline and config-drive (directory) datasources against real files and a real
 * HTTP server on 127.0.0.1, and datasourcesFromFlags' order.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmdlineValue } from '../../../src/datasource/cmdline.js';
import {
  ConfigDriveDatasource,
  findConfigDrive,
  readConfigDrive,
} from '../../../src/datasource/config-drive.js';
import { datasourcesFromFlags } from '../../../src/datasource/index.js';
import { ProcCmdlineDatasource } from '../../../src/datasource/proc-cmdline.js';
import { UrlDatasource } from '../../../src/datasource/url.js';
import { recorder } from './log-recorder.js';

const work = mkdtempSync(join(tmpdir(), 'flotilla-ds-'));
let server: Server;
let base: string;
let up = true;
const userData = '#cloud-config\nssh_authorized_keys:\n  - ssh-ed25519 AAAAsecretkey user\n';

beforeAll(async () => {
  server = createServer((req, res) => {
    if (!up) return void res.writeHead(503).end();
    if (req.url === '/user-data') return void res.writeHead(200).end(userData);
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(work, { recursive: true, force: true });
});

const fast = { initialBackoffMs: 5, maxBackoffMs: 20, timeoutMs: 2000 };

describe('url datasource', () => {
  it('is available once a GET succeeds, rechecked, and fetches the user-data', async () => {
    const ds = new UrlDatasource(`${base}/user-data`, { fetch: fast });
    up = false;
    expect(await ds.isAvailable()).toBe(false);
    up = true;
    expect(ds.availabilityChanges()).toBe(true);
    expect(await ds.isAvailable()).toBe(true);
    expect((await ds.fetchUserdata()).toString()).toBe(userData);
    expect(await ds.fetchMetadata()).toEqual({ sshPublicKeys: {} });
    expect(ds.type).toBe('url');
  });

  it('a 404 is a clear not-found error naming the URL', async () => {
    const ds = new UrlDatasource(`${base}/nope`, { fetch: fast });
    await expect(ds.fetchUserdata()).rejects.toThrow(`-from-url: ${base}/nope: not found (HTTP 404)`);
  });
});

describe('proc-cmdline', () => {
  it('parses cloud-config-url: underscores normalised, last wins, empty ignored with a warning', () => {
    const log = recorder();
    expect(cmdlineValue('ro quiet cloud-config-url=http://a/1', 'cloud-config-url')).toBe('http://a/1');
    expect(
      cmdlineValue('cloud_config_url=http://a/1 x cloud-config-url=http://b/2', 'cloud-config-url'),
    ).toBe('http://b/2');
    expect(cmdlineValue('cloud-config-url=http://a/1 cloud_config_url= ', 'cloud-config-url', log)).toBe(
      'http://a/1',
    );
    expect(log.text()).toContain('without a value');
    expect(cmdlineValue('cloud-config-urls=http://a/1 cloud-config-url', 'cloud-config-url')).toBeUndefined();
    expect(cmdlineValue('ignition.config.url=http://i/c.ign', 'ignition.config.url')).toBe('http://i/c.ign');
  });

  it('is available from a command line file with the key and fetches the URL', async () => {
    const path = join(work, 'cmdline');
    writeFileSync(path, `BOOT_IMAGE=/vmlinuz root=/dev/vda cloud_config_url=${base}/user-data\n`);
    const ds = new ProcCmdlineDatasource({ cmdlinePath: path, fetch: fast });
    expect(ds.availabilityChanges()).toBe(false);
    expect(await ds.isAvailable()).toBe(true);
    expect(ds.configRoot()).toBe(`${base}/user-data`);
    expect((await ds.fetchUserdata()).toString()).toBe(userData);
    writeFileSync(path, 'BOOT_IMAGE=/vmlinuz root=/dev/vda\n');
    expect(await new ProcCmdlineDatasource({ cmdlinePath: path }).isAvailable()).toBe(false);
    expect(await new ProcCmdlineDatasource({ cmdlinePath: join(work, 'absent') }).isAvailable()).toBe(false);
  });
});

describe('config drive (directory)', () => {
  const root = join(work, 'drive');
  const latest = join(root, 'openstack', 'latest');

  it('reads user_data and meta_data.json (public_keys, hostname, network_config)', async () => {
    mkdirSync(join(root, 'openstack', 'content'), { recursive: true });
    mkdirSync(latest, { recursive: true });
    writeFileSync(join(latest, 'user_data'), userData);
    writeFileSync(
      join(latest, 'meta_data.json'),
      JSON.stringify({
        uuid: 'u',
        hostname: 'node-1',
        public_keys: { mykey: 'ssh-rsa AAAAB3 k@h' },
        network_config: { content_path: '/content/0000' },
      }),
    );
    writeFileSync(join(root, 'openstack', 'content', '0000'), 'auto eth0\niface eth0 inet dhcp\n');
    const ds = new ConfigDriveDatasource(root);
    expect(ds.type).toBe('cloud-drive');
    expect(await ds.isAvailable()).toBe(true);
    expect(ds.configRoot()).toBe(join(root, 'openstack'));
    expect((await ds.fetchUserdata()).toString()).toBe(userData);
    expect(await ds.fetchMetadata()).toEqual({
      hostname: 'node-1',
      sshPublicKeys: { mykey: 'ssh-rsa AAAAB3 k@h' },
      networkConfig: { format: 'debian', contents: 'auto eth0\niface eth0 inet dhcp\n' },
    });
  });

  it('a missing user_data is empty, a missing meta_data.json no metadata, a missing root unavailable', async () => {
    const r2 = join(work, 'drive2');
    mkdirSync(join(r2, 'openstack', 'latest'), { recursive: true });
    expect(await readConfigDrive(r2)).toEqual({ userData: Buffer.alloc(0), metadata: { sshPublicKeys: {} } });
    expect(await new ConfigDriveDatasource(join(work, 'nodrive')).isAvailable()).toBe(false);
  });

  it('bad meta_data.json: a clear error naming the file and field; content_path may not escape', async () => {
    const r3 = join(work, 'drive3');
    const l3 = join(r3, 'openstack', 'latest');
    mkdirSync(l3, { recursive: true });
    writeFileSync(join(l3, 'meta_data.json'), '{"hostname": ');
    await expect(readConfigDrive(r3)).rejects.toThrow(/meta_data.json: invalid JSON/);
    writeFileSync(join(l3, 'meta_data.json'), '{"public_keys": {"k": 3}}');
    await expect(readConfigDrive(r3)).rejects.toThrow(/public_keys.k: not a string/);
    writeFileSync(join(l3, 'meta_data.json'), '{"network_config": {"content_path": "../../../etc/passwd"}}');
    await expect(readConfigDrive(r3)).rejects.toThrow(/content_path escapes the drive/);
  });

  it('the boot-time finder returns nothing when no file system has the label', async () => {
    expect(
      await findConfigDrive('flotilla-no-such-label', { byLabelDir: join(work, 'by-label') }),
    ).toBeUndefined();
  });
});

describe('datasourcesFromFlags', () => {
  it('builds every source in coreos-cloudinit order', () => {
    const ds = datasourcesFromFlags({
      fromVmwareOvfEnv: '/media/ovfenv/ovf-env.xml',
      fromVmwareGuestinfo: true,
      fromProcCmdline: true,
      fromConfigdrive: '/media/configdrive',
      fromUrl: 'http://127.0.0.1:1/u',
      fromFile: '/var/lib/coreos-install/user_data',
    });
    expect(ds.map((d) => d.type)).toEqual([
      'local-file',
      'url',
      'cloud-drive',
      'proc-cmdline',
      'vmware',
      'vmware',
    ]);
    expect(datasourcesFromFlags({})).toEqual([]);
    expect(datasourcesFromFlags({ fromProcCmdline: false })).toEqual([]);
    expect(datasourcesFromFlags({ fromConfigdriveLabel: 'config-2' })[0]!.configRoot()).toBe(
      'LABEL=config-2',
    );
  });
});
