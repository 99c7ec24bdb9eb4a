/**
 * fetchIgnitionConfig per platform against real files, the guestinfo stand-in
 * (test/support/vmware-rpctool, the one stand-in allowed) and a real HTTP server on 127.0.0.1.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fetchIgnitionConfig } from '../../../src/datasource/ignition.js';

const standIn = fileURLToPath(new URL('../../support/vmware-rpctool', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'flotilla-ign-src-'));
const savedPath = process.env.PATH;
const config =
  '{"ignition":{"version":"3.3.0"},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["ssh-ed25519 AAAA k"]}]}}';
let server: Server;
let base: string;
const fast = { initialBackoffMs: 5, timeoutMs: 2000 };

function guestinfo(values: Record<string, string>): void {
  const fixture = join(work, 'gi.json');
  writeFileSync(
    fixture,
    JSON.stringify(Object.fromEntries(Object.entries(values).map(([k, v]) => [`guestinfo.${k}`, v]))),
  );
  process.env.PATH = `${join(work, 'bin')}:${dirname(process.execPath)}`;
  process.env.VMWARE_GUESTINFO_FIXTURE = fixture;
}

beforeAll(async () => {
  mkdirSync(join(work, 'bin'));
  symlinkSync(standIn, join(work, 'bin', 'vmware-rpctool'));
  server = createServer((req, res) => {
    if (req.url === '/config.ign') return void res.writeHead(200).end(config);
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(() => {
  process.env.PATH = savedPath;
  delete process.env.VMWARE_GUESTINFO_FIXTURE;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(work, { recursive: true, force: true });
});

describe('fetchIgnitionConfig', { timeout: 30_000 }, () => {
  it('qemu: the fw_cfg file, or undefined when absent', async () => {
    const raw = join(work, 'raw');
    writeFileSync(raw, config);
    expect((await fetchIgnitionConfig('qemu', { fwCfgPath: raw }))?.toString()).toBe(config);
    expect(await fetchIgnitionConfig('qemu', { fwCfgPath: join(work, 'absent') })).toBeUndefined();
  });

  it('file: the given path; no path is an error', async () => {
    const f = join(work, 'config.ign');
    writeFileSync(f, config);
    expect((await fetchIgnitionConfig('file', { path: f }))?.toString()).toBe(config);
    await expect(fetchIgnitionConfig('file')).rejects.toThrow(/no config path/);
  });

  it('metal: ignition.config.url on the kernel command line, fetched', async () => {
    const cmdline = join(work, 'cmdline');
    writeFileSync(cmdline, `root=/dev/vda ignition.firstboot ignition.config.url=${base}/config.ign\n`);
    expect((await fetchIgnitionConfig('metal', { cmdlinePath: cmdline, fetch: fast }))?.toString()).toBe(
      config,
    );
    writeFileSync(cmdline, 'root=/dev/vda\n');
    expect(await fetchIgnitionConfig('metal', { cmdlinePath: cmdline })).toBeUndefined();
    writeFileSync(cmdline, `ignition.config.url=${base}/missing.ign\n`);
    await expect(fetchIgnitionConfig('metal', { cmdlinePath: cmdline, fetch: fast })).rejects.toThrow(
      `ignition.config.url: ${base}/missing.ign: not found (HTTP 404)`,
    );
  });

  it('vmware: ignition.config.data with its encoding, else ignition.config.url, else none', async () => {
    guestinfo({
      'ignition.config.data': gzipSync(config).toString('base64'),
      'ignition.config.data.encoding': 'gzip+base64',
    });
    expect((await fetchIgnitionConfig('vmware'))?.toString()).toBe(config);
    guestinfo({
      'ignition.config.data': Buffer.from(config).toString('base64'),
      'ignition.config.data.encoding': 'base64',
    });
    expect((await fetchIgnitionConfig('vmware'))?.toString()).toBe(config);
    guestinfo({ 'ignition.config.url': `${base}/config.ign` });
    expect((await fetchIgnitionConfig('vmware', { fetch: fast }))?.toString()).toBe(config);
    guestinfo({ 'coreos.config.data': '#cloud-config\n' });
    expect(await fetchIgnitionConfig('vmware')).toBeUndefined();
    guestinfo({ 'ignition.config.data': 'x', 'ignition.config.data.encoding': 'zstd' });
    await expect(fetchIgnitionConfig('vmware')).rejects.toThrow(/unsupported encoding "zstd"/);
  });

  it('refuses an unknown platform', async () => {
    // @ts-expect-error: not a platform
    await expect(fetchIgnitionConfig('aws')).rejects.toThrow(/unknown ignition platform "aws"/);
  });
});
