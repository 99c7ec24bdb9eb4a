/**
 * `flotilla ignition --stage=fetch` per platform through the CLI: VMware guestinfo through the
 * stand-in vmware-rpctool (test/support, the one stand-in allowed) with gzip+base64 data, QEMU
 * fw_cfg from a file, metal from `ignition.config.url=` on the kernel command line against a real
 * HTTP server on 127.0.0.1 (which also serves a merged config). The cache holds the rendered
 * config.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../../src/cli/main.js';

// Module loading and the ajv compile run on a shared, loaded machine: more than the 5 s default.
vi.setConfig({ testTimeout: 30_000 });

const standIn = fileURLToPath(new URL('../../support/vmware-rpctool', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'flotilla-ign-plat-'));
const savedPath = process.env.PATH;
let server: Server;
let base: string;

const extra = JSON.stringify({
  ignition: { version: '3.0.0' },
  systemd: { units: [{ name: 'extra.service', mask: true }] },
});
const userConfig = (role: string): string =>
  JSON.stringify({
    ignition: { version: '3.4.0', config: { merge: [{ source: `${base}/extra.ign` }] } },
    storage: { files: [{ path: '/etc/role', contents: { source: `data:,${role}` } }] },
  });

async function fetchStage(
  platform: string,
  root: string,
  flags: string[],
): Promise<{ code: number; out: string; err: string; cached: unknown }> {
  let out = '';
  let err = '';
  const run = join(root, 'run');
  const code = await main(
    ['ignition', '--stage=fetch', `--platform=${platform}`, `--root=${root}`, `--run-dir=${run}`, ...flags],
    { out: (s) => (out += s), err: (s) => (err += s) },
    {},
  );
  let cached: unknown;
  try {
    cached = JSON.parse(readFileSync(join(run, 'flotilla/ignition.json'), 'utf8'));
  } catch {
    cached = undefined;
  }
  return { code, out, err, cached };
}

function target(name: string, cmdline: string): { root: string; cmdline: string } {
  const root = join(work, name);
  mkdirSync(root);
  const c = join(work, `${name}.cmdline`);
  writeFileSync(c, cmdline);
  return { root, cmdline: c };
}

const rendered = (role: string) => ({
  ignition: { version: '3.0.0' },
  storage: { files: [{ path: '/etc/role', contents: { source: `data:,${role}` } }] },
  systemd: { units: [{ name: 'extra.service', mask: true }] },
});

beforeAll(async () => {
  mkdirSync(join(work, 'bin'));
  symlinkSync(standIn, join(work, 'bin', 'vmware-rpctool'));
  server = createServer((req, res) => {
    if (req.url === '/extra.ign') return void res.writeHead(200).end(extra);
    if (req.url === '/metal.ign') return void res.writeHead(200).end(userConfig('metal'));
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

describe('fetch stage per platform', () => {
  it('vmware: guestinfo ignition.config.data with gzip+base64 encoding', async () => {
    const fixture = join(work, 'gi.json');
    writeFileSync(
      fixture,
      JSON.stringify({
        'guestinfo.ignition.config.data': gzipSync(userConfig('vmware')).toString('base64'),
        'guestinfo.ignition.config.data.encoding': 'gzip+base64',
      }),
    );
    process.env.PATH = `${join(work, 'bin')}:${dirname(process.execPath)}`;
    process.env.VMWARE_GUESTINFO_FIXTURE = fixture;
    const t = target('vmware', 'ignition.firstboot\n');
    const r = await fetchStage('vmware', t.root, [`--cmdline=${t.cmdline}`]);
    expect(r).toMatchObject({ code: 0, out: 'Ignition fetch stage done\n' });
    expect(r.cached).toEqual({
      version: '3.4.0',
      platform: 'vmware',
      userConfigProvided: true,
      config: rendered('vmware'),
    });
  }, 30_000); // several stand-in processes, each a node start-up

  it('qemu: fw_cfg', async () => {
    const t = target('qemu', 'ignition.firstboot\n');
    const fw = join(work, 'fw_cfg_raw');
    writeFileSync(fw, userConfig('qemu'));
    const r = await fetchStage('qemu', t.root, [`--cmdline=${t.cmdline}`, `--fw-cfg=${fw}`]);
    expect(r).toMatchObject({ code: 0 });
    expect(r.cached).toEqual({
      version: '3.4.0',
      platform: 'qemu',
      userConfigProvided: true,
      config: rendered('qemu'),
    });
  });

  it('metal: ignition.config.url on the kernel command line', async () => {
    const t = target(
      'metal',
      `BOOT_IMAGE=/vmlinuz ignition.firstboot ignition.config.url=${base}/metal.ign\n`,
    );
    const r = await fetchStage('metal', t.root, [`--cmdline=${t.cmdline}`]);
    expect(r).toMatchObject({ code: 0 });
    expect(r.cached).toEqual({
      version: '3.4.0',
      platform: 'metal',
      userConfigProvided: true,
      config: rendered('metal'),
    });
  });

  it('metal: an unreachable config URL fails the stage, naming the URL', async () => {
    const t = target('metal404', `ignition.firstboot ignition.config.url=${base}/missing.ign\n`);
    const r = await fetchStage('metal', t.root, [`--cmdline=${t.cmdline}`]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${base}/missing.ign`);
    expect(r.cached).toBeUndefined();
  });
});
