import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KEYS, loadConfig } from '../../../src/daemon/config.js';
import { isCode } from '../../../src/lib/errors.js';
import {
  configText,
  planInstall,
  planUninstall,
  serviceUnit,
  type InstallObserved,
  type InstallRequest,
} from '../../../src/install/plan.js';

const DEFAULT_CONF = readFileSync(new URL('../../../packaging/flotilla.conf', import.meta.url), 'utf8');
const SERVICE = readFileSync(new URL('../../../systemd/flotilla.service', import.meta.url), 'utf8');
const SOCKET = readFileSync(new URL('../../../systemd/flotilla.socket', import.meta.url), 'utf8');
const unitFile = (n: string) => readFileSync(new URL(`../../../systemd/${n}`, import.meta.url), 'utf8');
const FIRST_BOOT = [
  'flotilla-ignition.service',
  'flotilla-cloudinit.service',
  'flotilla-cloudinit-configdrive.service',
  'etcd-member.service',
];
const units: Record<string, string> = {
  'flotilla.service': SERVICE,
  'flotilla.socket': SOCKET,
  ...Object.fromEntries(FIRST_BOOT.map((n) => [n, unitFile(n)])),
};

const req = (over: Partial<InstallRequest> = {}): InstallRequest => ({
  prefix: '/usr',
  start: true,
  unitDir: '/etc/systemd/system',
  configFile: '/etc/flotilla/flotilla.conf',
  dataDir: '/var/lib/flotilla',
  ...over,
});

const observed = (over: Partial<InstallObserved> = {}): InstallObserved => ({
  uid: 0,
  systemdRunning: true,
  source: '/tmp/flotilla-0.1.0',
  sourceHas: new Set([
    'dist/cli/main.js',
    'libexec/flotilla',
    'bin/flotilla',
    'share/flotilla.conf',
    'systemd/flotilla.socket',
    'systemd/flotilla.service',
    ...FIRST_BOOT.map((n) => `systemd/${n}`),
  ]),
  nodeVersion: 'v22.23.5\n',
  bundledNode: true,
  defaultConfig: DEFAULT_CONF,
  existingConfig: undefined,
  dpkgInstalled: false,
  paths: new Map(),
  previous: undefined,
  ...over,
});

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isCode(err, 'E_INSTALL')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('the default flotilla.conf', () => {
  it('documents every config key, commented out, and each example value loads', () => {
    const uncommented = DEFAULT_CONF.replace(/^#([a-z_]+=)/gm, '$1');
    const keys = [...uncommented.matchAll(/^([a-z_]+)=/gm)].map((m) => m[1]);
    expect(new Set(keys)).toEqual(new Set(Object.keys(KEYS)));
    // As shipped: nothing set, so the defaults (embedded registry).
    expect(loadConfig({ configFile: 'f', env: {}, readFile: () => DEFAULT_CONF }).config.etcdServers).toEqual(
      [],
    );
  });
});

describe('planInstall', () => {
  it('plans the tree, the five links, config, units, then daemon-reload, enable, start', () => {
    const plan = planInstall(
      req({ etcdServers: 'http://10.0.0.1:2379', metadata: 'role=web' }),
      observed(),
      units,
    );
    const kinds = plan.actions.map(
      (a) => `${a.kind}:${'path' in a ? a.path : 'to' in a ? a.to : a.argv.join(' ')}`,
    );
    expect(kinds).toEqual([
      'copy-tree:/usr/lib/flotilla',
      'mkdir:/usr/bin',
      'link:/usr/bin/flotilla',
      'link:/usr/bin/fleetctl',
      'link:/usr/bin/coreos-cloudinit',
      'link:/usr/bin/update_engine_client',
      'link:/usr/bin/locksmithctl',
      'mkdir:/var/lib/flotilla',
      'mkdir:/etc/flotilla',
      'write:/etc/flotilla/flotilla.conf',
      'write:/etc/systemd/system/flotilla.socket',
      'write:/etc/systemd/system/flotilla.service',
      ...FIRST_BOOT.map((n) => `write:/etc/systemd/system/${n}`),
      'write:/usr/lib/flotilla/install-manifest.json',
      'systemctl:daemon-reload',
      'systemctl:enable flotilla.socket flotilla.service flotilla-ignition.service flotilla-cloudinit.service flotilla-cloudinit-configdrive.service',
      'systemctl:start flotilla.socket flotilla.service',
    ]);
    const conf = plan.actions.find((a) => a.kind === 'write' && a.path.endsWith('flotilla.conf'));
    expect(conf && 'content' in conf && conf.content).toMatch(
      /^etcd_servers=http:\/\/10.0.0.1:2379\nmetadata=role=web\n$/m,
    );
    for (const a of plan.actions) expect(a.reason).not.toBe('');
  });

  it('points ExecStart at the tree under --prefix', () => {
    const plan = planInstall(req({ prefix: '/opt/fl' }), observed(), units);
    const unit = plan.actions.find((a) => a.kind === 'write' && a.path.endsWith('flotilla.service'));
    expect(unit && 'content' in unit && unit.content).toContain(
      'ExecStart=/opt/fl/lib/flotilla/bin/flotilla agent\n',
    );
    expect(serviceUnit(SERVICE, '/usr/lib/flotilla')).toBe(SERVICE);
  });

  it('refuses without systemd as PID 1, before anything else', () => {
    expect(refusal(() => planInstall(req(), observed({ systemdRunning: false, uid: 1000 }), units))).toMatch(
      /systemd is not running as PID 1.*\/run\/systemd\/system/,
    );
  });

  it('refuses a Node that is too old when the tree bundles none, and one that cannot run', () => {
    expect(
      refusal(() => planInstall(req(), observed({ bundledNode: false, nodeVersion: 'v18.19.0' }), units)),
    ).toMatch(/Node v18.19.0 is too old: flotilla needs Node >= 20.19.0; this tree has no bundled runtime/);
    expect(refusal(() => planInstall(req(), observed({ nodeVersion: undefined }), units))).toMatch(
      /cannot run the Node runtime bundled in \/tmp\/flotilla-0.1.0\/node/,
    );
    expect(() =>
      planInstall(req(), observed({ bundledNode: false, nodeVersion: 'v20.19.0' }), units),
    ).not.toThrow();
  });

  it('refuses bad flags through the agent config validation, naming the key and value', () => {
    expect(refusal(() => planInstall(req({ etcdServers: 'localhost:2379' }), observed(), units))).toMatch(
      /etcd_servers: "localhost:2379" is not a URL|etcd_servers.*scheme must be http or https/,
    );
    expect(refusal(() => planInstall(req({ metadata: 'region' }), observed(), units))).toMatch(
      /metadata: "region" is not key=value/,
    );
    expect(refusal(() => planInstall(req({ metadata: 'a=b\netcd_servers=x' }), observed(), units))).toMatch(
      /--metadata: the value must be one line/,
    );
  });

  it('refuses a bad prefix, a dpkg install, a foreign file, not root, an incomplete tree', () => {
    expect(refusal(() => planInstall(req({ prefix: 'usr' }), observed(), units))).toMatch(/--prefix "usr"/);
    expect(refusal(() => planInstall(req({ prefix: '/opt/$(x)' }), observed(), units))).toMatch(/--prefix/);
    expect(refusal(() => planInstall(req({ prefix: '/opt/../etc' }), observed(), units))).toMatch(/--prefix/);
    expect(refusal(() => planInstall(req(), observed({ dpkgInstalled: true }), units))).toMatch(
      /Debian package/,
    );
    expect(refusal(() => planInstall(req(), observed({ uid: 1000 }), units))).toMatch(/must run as root/);
    const paths = new Map([['/usr/bin/fleetctl', { kind: 'file' as const }]]);
    expect(refusal(() => planInstall(req(), observed({ paths }), units))).toMatch(
      /\/usr\/bin\/fleetctl exists and was not installed by flotilla install/,
    );
    expect(
      refusal(() => planInstall(req(), observed({ sourceHas: new Set(['dist/cli/main.js']) }), units)),
    ).toMatch(/not a complete flotilla tree: libexec\/flotilla is missing/);
  });

  it('replaces an earlier install of its own (manifest) and keeps an edited config unless flags change it', () => {
    const previous = {
      prefix: '/usr',
      tree: '/usr/lib/flotilla',
      links: ['/usr/bin/flotilla'],
      units: ['/etc/systemd/system/flotilla.service'],
    };
    const paths = new Map([
      ['/usr/lib/flotilla', { kind: 'dir' as const }],
      ['/usr/bin/flotilla', { kind: 'link' as const, target: '/usr/lib/flotilla/bin/flotilla' }],
      ['/etc/systemd/system/flotilla.service', { kind: 'file' as const }],
    ]);
    const existingConfig = 'metadata=a=b\n';
    const plan = planInstall(req(), observed({ paths, previous, existingConfig }), units);
    expect(plan.actions[0]).toMatchObject({ kind: 'remove', path: '/usr/lib/flotilla' });
    expect(plan.actions.some((a) => a.kind === 'link' && a.path === '/usr/bin/flotilla')).toBe(false);
    expect(plan.actions.some((a) => a.kind === 'write' && a.path.endsWith('flotilla.conf'))).toBe(false);
    expect(configText(existingConfig, { metadata: 'c=d' })).toBe(
      '\n# Set by flotilla install:\nmetadata=c=d\n',
    );
  });
});

describe('planUninstall', () => {
  const manifest = {
    prefix: '/usr',
    tree: '/usr/lib/flotilla',
    links: ['/usr/bin/flotilla', '/usr/bin/fleetctl'],
    units: ['/etc/systemd/system/flotilla.socket', '/etc/systemd/system/flotilla.service'],
  };
  const o = {
    uid: 0,
    systemdRunning: true,
    dpkgInstalled: false,
    manifest,
    manifestPath: '/usr/lib/flotilla/m',
  };

  it('stops first (a leave), removes what the manifest lists, purges data and config only with --purge', () => {
    const plain = planUninstall(
      { purge: false, configDir: '/etc/flotilla', dataDir: '/var/lib/flotilla' },
      o,
    );
    expect(plain[0]).toMatchObject({
      kind: 'systemctl',
      argv: ['stop', 'flotilla.socket', 'flotilla.service'],
    });
    const removed = plain.filter((a) => a.kind === 'remove').map((a) => ('path' in a ? a.path : ''));
    expect(removed).toEqual([...manifest.units, ...manifest.links, manifest.tree]);
    const purge = planUninstall({ purge: true, configDir: '/etc/flotilla', dataDir: '/var/lib/flotilla' }, o);
    const purged = purge.filter((a) => a.kind === 'remove').map((a) => ('path' in a ? a.path : ''));
    expect(purged).toEqual(expect.arrayContaining(['/var/lib/flotilla', '/etc/flotilla']));
  });

  it('refuses a dpkg install and a tree that install did not make', () => {
    const r = { purge: false, configDir: '/etc/flotilla', dataDir: '/var/lib/flotilla' };
    expect(refusal(() => planUninstall(r, { ...o, dpkgInstalled: true }))).toMatch(/dpkg -r/);
    expect(refusal(() => planUninstall(r, { ...o, manifest: undefined }))).toMatch(
      /no \/usr\/lib\/flotilla\/m/,
    );
  });
});
