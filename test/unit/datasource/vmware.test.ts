/**
 * The VMware guestinfo datasource through the real ToolGuestInfo, which spawns the guestinfo
 * stand-in test/support/vmware-rpctool (or vmtoolsd) found on PATH, answering from a JSON fixture.
 * This stand-in is the only one the first-boot issue allows (real VMware cannot run here).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeConfigData } from '../../../src/datasource/encoding.js';
import { OvfDefaultsGuestInfo, ToolGuestInfo, parseOvfEnv } from '../../../src/datasource/guestinfo.js';
import { datasourcesFromFlags } from '../../../src/datasource/index.js';
import { VmwareDatasource } from '../../../src/datasource/vmware.js';
import { recorder } from './log-recorder.js';

const standIn = fileURLToPath(new URL('../../support/vmware-rpctool', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'flotilla-vmware-'));
const nodeDir = dirname(process.execPath);
const savedPath = process.env.PATH;
const fixture = join(work, 'guestinfo.json');
const callLog = join(work, 'calls.log');
const bothDir = join(work, 'both');
const onlyVmtoolsd = join(work, 'only-vmtoolsd');
const noDmi = join(work, 'no-dmi');
let server: Server;
let base: string;

const secretConfig = '#cloud-config\nusers:\n  - name: core\n    passwd: $6$rounds=4096$SECRETHASH\n';

function guestinfo(values: Record<string, string>, pathDir = bothDir): void {
  writeFileSync(
    fixture,
    JSON.stringify(Object.fromEntries(Object.entries(values).map(([k, v]) => [`guestinfo.${k}`, v]))),
  );
  writeFileSync(callLog, '');
  process.env.PATH = `${pathDir}:${nodeDir}`;
  process.env.VMWARE_GUESTINFO_FIXTURE = fixture;
  process.env.VMWARE_GUESTINFO_LOG = callLog;
}

function calls(): string[][] {
  return readFileSync(callLog, 'utf8')
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l) as string[]);
}

function source(extra: ConstructorParameters<typeof VmwareDatasource>[0] = {}): VmwareDatasource {
  return new VmwareDatasource({ dmiPath: noDmi, fetch: { initialBackoffMs: 5, timeoutMs: 2000 }, ...extra });
}

const ovf = (props: Record<string, string>): string =>
  `<?xml version="1.0" encoding="UTF-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"
  oe:id="">
  <PlatformSection><Kind>VMware ESXi</Kind></PlatformSection>
  <PropertySection>
${Object.entries(props)
  .map(
    ([k, v]) =>
      `    <Property oe:key="${k}" oe:value="${v.replaceAll('&', '&amp;').replaceAll('"', '&quot;').replaceAll('<', '&lt;').replaceAll('\n', '&#10;')}"/>`,
  )
  .join('\n')}
  </PropertySection>
</Environment>
`;

beforeAll(async () => {
  mkdirSync(bothDir);
  mkdirSync(onlyVmtoolsd);
  symlinkSync(standIn, join(bothDir, 'vmware-rpctool'));
  symlinkSync(standIn, join(bothDir, 'vmtoolsd'));
  symlinkSync(standIn, join(onlyVmtoolsd, 'vmtoolsd'));
  server = createServer((req, res) => {
    if (req.url === '/plain') return void res.writeHead(200).end(secretConfig);
    if (req.url === '/b64') return void res.writeHead(200).end(Buffer.from(secretConfig).toString('base64'));
    if (req.url === '/config.ign') return void res.writeHead(200).end('{"ignition":{"version":"3.3.0"}}');
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  process.env.PATH = savedPath;
  delete process.env.VMWARE_GUESTINFO_FIXTURE;
  delete process.env.VMWARE_GUESTINFO_LOG;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(work, { recursive: true, force: true });
});

// Each case runs the stand-in (one node process per guestinfo key): seconds on a loaded 2-core host.
describe('guestinfo through vmware-rpctool / vmtoolsd', { timeout: 30_000 }, () => {
  it('asks vmware-rpctool with one argv word per RPC, and a missing key is undefined', async () => {
    guestinfo({ hostname: "it's $(reboot) `x`" });
    const gi = new ToolGuestInfo();
    expect(await gi.get('hostname')).toBe("it's $(reboot) `x`");
    expect(await gi.get('no.such.key')).toBeUndefined();
    expect(calls()).toEqual([
      ['vmware-rpctool', 'info-get guestinfo.hostname'],
      ['vmware-rpctool', 'info-get guestinfo.no.such.key'],
    ]);
    await expect(gi.get('a b; reboot')).rejects.toThrow(/invalid key/);
  });

  it('falls back to vmtoolsd --cmd when vmware-rpctool is not installed', async () => {
    guestinfo({ hostname: 'h1' }, onlyVmtoolsd);
    const gi = new ToolGuestInfo();
    expect(await gi.get('hostname')).toBe('h1');
    expect(calls()).toEqual([['vmtoolsd', '--cmd', 'info-get guestinfo.hostname']]);
    expect(await gi.reachable()).toBe(true);
  });

  it('with no tool installed nothing is reachable', async () => {
    guestinfo({ hostname: 'h1' }, join(work, 'empty-path'));
    const gi = new ToolGuestInfo();
    expect(await gi.get('hostname')).toBeUndefined();
    expect(await gi.reachable()).toBe(false);
    expect(await source().isAvailable()).toBe(false);
  });
});

describe('vmware datasource: user-data', { timeout: 30_000 }, () => {
  it.each([
    ['', secretConfig],
    ['base64', Buffer.from(secretConfig).toString('base64')],
    ['b64', Buffer.from(secretConfig).toString('base64')],
    ['gzip+base64', gzipSync(secretConfig).toString('base64')],
    ['gz+b64', gzipSync(secretConfig).toString('base64')],
  ])('coreos.config.data with encoding %j', async (encoding, data) => {
    const log = recorder();
    guestinfo({
      'coreos.config.data': data,
      ...(encoding ? { 'coreos.config.data.encoding': encoding } : {}),
    });
    const ds = source({ log });
    expect(await ds.isAvailable()).toBe(true);
    expect(ds.availabilityChanges()).toBe(false);
    expect((await ds.fetchUserdata()).toString()).toBe(secretConfig);
    expect(log.text()).not.toContain('SECRETHASH');
  });

  it('bad encodings and data are errors naming the key', async () => {
    guestinfo({ 'coreos.config.data': 'abc', 'coreos.config.data.encoding': 'rot13' });
    await expect(source().fetchUserdata()).rejects.toThrow(
      /^guestinfo.coreos.config.data.encoding: unsupported encoding "rot13"/,
    );
    guestinfo({ 'coreos.config.data': 'not*base64!', 'coreos.config.data.encoding': 'base64' });
    await expect(source().fetchUserdata()).rejects.toThrow(
      'guestinfo.coreos.config.data: invalid base64 data',
    );
    guestinfo({
      'coreos.config.data': Buffer.from('plain').toString('base64'),
      'coreos.config.data.encoding': 'gzip+base64',
    });
    await expect(source().fetchUserdata()).rejects.toThrow(/guestinfo.coreos.config.data: invalid gzip data/);
  });

  it('decodes raw gzip, and bounds what gunzip may produce', () => {
    expect(decodeConfigData(gzipSync('x'), 'gz', 'k').toString()).toBe('x');
    expect(() => decodeConfigData(gzipSync(Buffer.alloc(4096)), 'gzip', 'k', 1024)).toThrow(
      /larger than 1024 bytes once decompressed/,
    );
  });

  it('coreos.config.url is fetched when data is empty, with the encoding still applied', async () => {
    guestinfo({ 'coreos.config.url': `${base}/plain` });
    expect((await source().fetchUserdata()).toString()).toBe(secretConfig);
    guestinfo({
      'coreos.config.data': '',
      'coreos.config.url': `${base}/b64`,
      'coreos.config.data.encoding': 'base64',
    });
    expect((await source().fetchUserdata()).toString()).toBe(secretConfig);
    guestinfo({ 'coreos.config.url': `${base}/gone` });
    await expect(source().fetchUserdata()).rejects.toThrow(
      `guestinfo.coreos.config.url: ${base}/gone: not found (HTTP 404)`,
    );
  });

  it('no config keys: empty user-data', async () => {
    guestinfo({ hostname: 'only-a-name' });
    expect(await source().isAvailable()).toBe(true);
    expect((await source().fetchUserdata()).length).toBe(0);
  });

  it('available on a VMware DMI vendor even with no keys; unavailable with neither', async () => {
    const dmi = join(work, 'sys_vendor');
    writeFileSync(dmi, 'VMware, Inc.\n');
    guestinfo({});
    expect(await source({ dmiPath: dmi }).isAvailable()).toBe(true);
    expect(await source().isAvailable()).toBe(false);
  });

  it('the OVF environment in guestinfo.ovfenv gives defaults; a direct key wins', async () => {
    guestinfo({
      ovfenv: ovf({
        'guestinfo.hostname': 'from-ovf',
        'guestinfo.coreos.config.data': Buffer.from(secretConfig).toString('base64'),
        'guestinfo.coreos.config.data.encoding': 'base64',
        'guestinfo.dns.server.0': '192.0.2.53',
      }),
      hostname: 'direct',
    });
    const ds = source();
    expect(await ds.isAvailable()).toBe(true);
    expect((await ds.fetchUserdata()).toString()).toBe(secretConfig);
    const md = await ds.fetchMetadata();
    expect(md.hostname).toBe('direct');
  });

  it('-from-vmware-ovf-env PATH reads the file, without any tool', async () => {
    guestinfo({}, join(work, 'empty-path'));
    const path = join(work, 'ovf-env.xml');
    writeFileSync(
      path,
      ovf({ 'guestinfo.hostname': 'ovf-host', 'guestinfo.coreos.config.data': secretConfig }),
    );
    const [ds] = datasourcesFromFlags({ fromVmwareOvfEnv: path });
    expect(await ds!.isAvailable()).toBe(true);
    expect((await ds!.fetchUserdata()).toString()).toBe(secretConfig);
    expect((await ds!.fetchMetadata()).hostname).toBe('ovf-host');
    expect(await datasourcesFromFlags({ fromVmwareOvfEnv: join(work, 'none.xml') })[0]!.isAvailable()).toBe(
      false,
    );
  });

  it('parses OVF properties with any prefix and entities, and refuses a non-OVF document', () => {
    const p = parseOvfEnv(
      `<e:Environment xmlns:e="http://schemas.dmtf.org/ovf/environment/1"><e:PropertySection>
       <!-- <e:Property e:key="guestinfo.commented" e:value="x"/> -->
       <e:Property e:value='a &amp; b &lt;c&gt; &#65;&#x42;' e:key='guestinfo.k'/></e:PropertySection></e:Environment>`,
    );
    expect([...p]).toEqual([['guestinfo.k', 'a & b <c> AB']]);
    expect(() => parseOvfEnv('<html/>')).toThrow(/not an OVF environment/);
  });
});

describe('vmware datasource: metadata and -convert-netconf vmware units', { timeout: 30_000 }, () => {
  it('reads hostname, interfaces by role, DNS, and makes the .network units', async () => {
    guestinfo({
      hostname: 'node-7',
      'dns.server.0': '192.0.2.53',
      'dns.server.1': '192.0.2.54',
      'dns.domain.0': 'example.com',
      'dns.domain.1': 'corp.example.com',
      'interface.0.name': 'ens192',
      'interface.0.mac': '00:50:56:aa:bb:cc',
      'interface.0.dhcp': 'no',
      'interface.0.role': 'public',
      'interface.0.ip.0.address': '203.0.113.10/24',
      'interface.0.ip.1.address': '2001:db8::10/64',
      'interface.0.route.0.gateway': '203.0.113.1',
      'interface.0.route.0.destination': '0.0.0.0/0',
      'interface.1.mac': '00:50:56:dd:ee:ff',
      'interface.1.role': 'private',
      'interface.1.ip.0.address': 'fd00::7/64',
      'interface.2.name': 'ens256',
      'interface.2.dhcp': 'yes',
      'interface.4.name': 'never-reached',
    });
    const md = await source().fetchMetadata();
    expect(md).toEqual({
      hostname: 'node-7',
      publicIPv4: '203.0.113.10',
      privateIPv6: 'fd00::7',
      sshPublicKeys: {},
      networkUnits: [
        {
          name: '00-ens192.network',
          contents:
            '[Match]\nName=ens192\nMACAddress=00:50:56:aa:bb:cc\n\n[Network]\nDomains=example.com corp.example.com\n' +
            'DNS=192.0.2.53\nDNS=192.0.2.54\n\n[Address]\nAddress=203.0.113.10/24\n\n[Address]\nAddress=2001:db8::10/64\n\n' +
            '[Route]\nDestination=0.0.0.0/0\nGateway=203.0.113.1\n',
        },
        {
          name: '00-00:50:56:dd:ee:ff.network',
          contents:
            '[Match]\nMACAddress=00:50:56:dd:ee:ff\n\n[Network]\nDomains=example.com corp.example.com\n' +
            'DNS=192.0.2.53\nDNS=192.0.2.54\n\n[Address]\nAddress=fd00::7/64\n',
        },
        { name: '00-ens256.network', contents: '[Match]\nName=ens256\n\n[Network]\nDHCP=true\n' },
      ],
    });
  });

  it.each([
    [
      { 'interface.0.name': 'e0', 'interface.0.dhcp': 'maybe' },
      'guestinfo.interface.0.dhcp: invalid DHCP option: "maybe"',
    ],
    [
      { 'interface.0.name': 'e0', 'interface.0.role': 'dmz' },
      'guestinfo.interface.0.role: unrecognized role: "dmz"',
    ],
    [
      { 'interface.0.name': 'e0', 'interface.0.route.0.destination': '0.0.0.0/0' },
      'guestinfo.interface.0.route.0.gateway: missing gateway key',
    ],
    [
      { 'interface.0.name': 'e0', 'interface.0.route.0.gateway': '10.0.0.1' },
      'guestinfo.interface.0.route.0.destination: missing destination key',
    ],
    [
      { 'interface.0.ip.0.address': '10.0.0.300/24' },
      'guestinfo.interface.0.ip.0.address: invalid CIDR address "10.0.0.300/24"',
    ],
  ])('bad network keys %j: %s', async (values, message) => {
    guestinfo(values);
    await expect(source().fetchMetadata()).rejects.toThrow(message);
  });

  it('OvfDefaultsGuestInfo reads the OVF env once', async () => {
    guestinfo({ ovfenv: ovf({ 'guestinfo.a': '1', 'guestinfo.b': '2' }) });
    const gi = new OvfDefaultsGuestInfo(new ToolGuestInfo());
    expect([await gi.get('a'), await gi.get('b'), await gi.get('c')]).toEqual(['1', '2', undefined]);
    expect(calls().filter((c) => c[1] === 'info-get guestinfo.ovfenv')).toHaveLength(1);
  });
});
