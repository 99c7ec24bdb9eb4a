/**
 * `flotilla install` / `uninstall` as pure planners: what the host looks like (observed, gathered by
 * observe.ts) plus what the operator asked for → refusals, or the ordered actions with their
 * reasons. Everything is validated here, before apply.ts writes anything: systemd as PID 1, root,
 * a Node that is new enough (the bundled one, or the one running us when there is none), the
 * flags (through the agent's own config loader, on the exact file that will be written), the
 * prefix, and that nothing in the way belongs to someone else (a dpkg install, a foreign file).
 */
import { loadConfig } from '../daemon/config.js';
import { FlotillaError } from '../lib/errors.js';

/** The commands the tree provides, all symlinks to its launcher. */
export const COMMAND_NAMES = [
  'flotilla',
  'fleetctl',
  'coreos-cloudinit',
  'update_engine_client',
  'locksmithctl',
] as const;
/** Every unit installed: the agent and its socket, and the first-boot units (issue 14). */
export const UNIT_NAMES = [
  'flotilla.socket',
  'flotilla.service',
  'flotilla-ignition.service',
  'flotilla-cloudinit.service',
  'flotilla-cloudinit-configdrive.service',
  'etcd-member.service',
] as const;
/** Enabled for the next boot: the agent, and first boot (each skips itself when it has nothing to do). */
export const ENABLE_UNITS = [
  'flotilla.socket',
  'flotilla.service',
  'flotilla-ignition.service',
  'flotilla-cloudinit.service',
  'flotilla-cloudinit-configdrive.service',
] as const;
/** Started now: the agent (etcd-member is enabled and started by cloud-config's coreos.etcd2). */
export const START_UNITS = ['flotilla.socket', 'flotilla.service'] as const;
export const MIN_NODE = [20, 19, 0] as const;
export const MANIFEST = 'install-manifest.json';

export type PathState =
  { kind: 'absent' } | { kind: 'link'; target: string } | { kind: 'file' } | { kind: 'dir' };

export interface InstallObserved {
  uid: number;
  /** /run/systemd/system exists (systemd is PID 1). */
  systemdRunning: boolean;
  /** The tree we install from (the unpacked tarball's flotilla-VERSION/). */
  source: string;
  /** Files of the source tree that exist (relative paths). */
  sourceHas: ReadonlySet<string>;
  /** `node --version` of the runtime the installed commands will run: bundled, else the one running us. */
  nodeVersion: string | undefined;
  bundledNode: boolean;
  /** The default configuration text shipped in the tree (share/flotilla.conf). */
  defaultConfig: string | undefined;
  /** /etc/flotilla/flotilla.conf as it is now. */
  existingConfig: string | undefined;
  /** dpkg knows a `flotilla` package (installed with the .deb). */
  dpkgInstalled: boolean;
  /** The state of every path the plan would create (links, unit files, the tree). */
  paths: ReadonlyMap<string, PathState>;
  /** The manifest of an earlier `flotilla install` at the same prefix: its paths may be replaced. */
  previous: Plan['manifest'] | undefined;
}

export interface InstallRequest {
  prefix: string;
  etcdServers?: string;
  metadata?: string;
  start: boolean;
  unitDir: string;
  configFile: string;
  dataDir: string;
}

export type Action =
  | { kind: 'copy-tree'; from: string; to: string; reason: string }
  | { kind: 'link'; path: string; target: string; reason: string }
  | { kind: 'write'; path: string; content: string; mode: number; reason: string }
  | { kind: 'mkdir'; path: string; mode: number; reason: string }
  | { kind: 'systemctl'; argv: string[]; undo?: string[]; reason: string }
  | { kind: 'remove'; path: string; reason: string };

export interface Plan {
  actions: Action[];
  /** Everything install created, for uninstall (written into the tree as MANIFEST). */
  manifest: { prefix: string; tree: string; links: string[]; units: string[] };
}

function refuse(message: string, details: Record<string, unknown> = {}): never {
  throw new FlotillaError('E_INSTALL', message, details);
}

export function parseNodeVersion(v: string): number[] | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

export function nodeTooOld(v: number[]): boolean {
  for (let i = 0; i < 3; i++) if (v[i] !== MIN_NODE[i]) return v[i]! < MIN_NODE[i]!;
  return false;
}

/** The config file to write: the existing (or default) text with the given keys set. */
export function configText(base: string, set: Record<string, string | undefined>): string {
  let lines = base.replace(/\n$/, '').split('\n');
  const given = Object.entries(set).filter((e): e is [string, string] => e[1] !== undefined);
  for (const [key] of given) lines = lines.filter((l) => !new RegExp(`^\\s*${key}\\s*=`).test(l));
  if (given.length > 0) lines.push('', '# Set by flotilla install:', ...given.map(([k, v]) => `${k}=${v}`));
  return `${lines.join('\n')}\n`;
}

const SAFE_PATH = /^\/[A-Za-z0-9._/+-]*$/;

/** The unit file for a tree at `tree`: ExecStart points at its launcher. */
export function serviceUnit(text: string, tree: string): string {
  return text.replace(/^ExecStart=\/usr\/lib\/flotilla\/bin\/flotilla /gm, `ExecStart=${tree}/bin/flotilla `);
}

export function planInstall(req: InstallRequest, o: InstallObserved, units: Record<string, string>): Plan {
  if (!o.systemdRunning) {
    refuse(
      'systemd is not running as PID 1 on this host (/run/systemd/system is missing): flotilla runs as a systemd service; nothing was installed',
      { cause: 'no-systemd' },
    );
  }
  if (o.uid !== 0) refuse(`flotilla install must run as root (uid is ${o.uid}); nothing was installed`);
  if (o.dpkgInstalled) {
    refuse(
      'flotilla is installed as a Debian package here: upgrade or remove it with dpkg/apt, not flotilla install',
      {
        cause: 'dpkg',
      },
    );
  }
  for (const f of [
    'dist/cli/main.js',
    'libexec/flotilla',
    'bin/flotilla',
    'share/flotilla.conf',
    ...UNIT_NAMES.map((u) => `systemd/${u}`),
  ]) {
    if (!o.sourceHas.has(f))
      refuse(`${o.source} is not a complete flotilla tree: ${f} is missing`, { file: f });
  }
  const version = o.nodeVersion === undefined ? undefined : parseNodeVersion(o.nodeVersion);
  if (!version) {
    refuse(
      `cannot run the Node runtime${o.bundledNode ? ` bundled in ${o.source}/node` : ''}: flotilla needs Node >= ${MIN_NODE.join('.')}`,
      {
        cause: 'node',
      },
    );
  }
  if (nodeTooOld(version)) {
    refuse(
      `Node ${o.nodeVersion!.trim()} is too old: flotilla needs Node >= ${MIN_NODE.join('.')}${o.bundledNode ? '' : '; this tree has no bundled runtime: install from the release tarball (flotilla-VERSION-linux-x64.tar.gz), which carries its own'}`,
      { cause: 'node', node: o.nodeVersion!.trim() },
    );
  }
  if (!SAFE_PATH.test(req.prefix) || req.prefix.includes('//') || /(^|\/)\.\.?(\/|$)/.test(req.prefix)) {
    refuse(
      `--prefix ${JSON.stringify(req.prefix)} must be a plain absolute path (letters, digits, . _ - + /)`,
      {
        field: 'prefix',
      },
    );
  }
  const prefix = req.prefix === '/' ? '' : req.prefix.replace(/\/$/, '');
  const tree = `${prefix}/lib/flotilla`;
  if (tree === o.source)
    refuse(`${o.source} is already the installed tree: run install from the unpacked tarball`);

  for (const [flag, v] of [
    ['--etcd-servers', req.etcdServers],
    ['--metadata', req.metadata],
  ] as const) {
    if (v !== undefined && /[\r\n\0]/.test(v)) refuse(`${flag}: the value must be one line`, { field: flag });
  }
  const conf = configText(o.existingConfig ?? o.defaultConfig ?? '', {
    etcd_servers: req.etcdServers,
    metadata: req.metadata,
  });
  try {
    // The agent's own loader on the very text that will be written (no environment, no flags).
    loadConfig({ configFile: req.configFile, env: {}, readFile: () => conf });
  } catch (err) {
    const e = err as FlotillaError;
    refuse(`invalid configuration: ${e.message}; nothing was installed`, {
      field: e.details?.field,
      cause: 'config',
    });
  }

  const links = COMMAND_NAMES.map((n) => `${prefix}/bin/${n}`);
  const unitPaths = UNIT_NAMES.map((u) => `${req.unitDir}/${u}`);
  for (const p of [tree, ...links, ...unitPaths]) {
    const st = o.paths.get(p) ?? { kind: 'absent' };
    const prev = o.previous;
    const ours =
      (st.kind === 'link' && st.target === `${tree}/bin/flotilla`) ||
      (prev !== undefined && (p === prev.tree || prev.links.includes(p) || prev.units.includes(p)));
    if (st.kind !== 'absent' && !ours) {
      refuse(`${p} exists and was not installed by flotilla install: remove it first`, { path: p });
    }
  }

  const actions: Action[] = [];
  if (o.paths.get(tree)?.kind === 'dir') {
    actions.push({ kind: 'remove', path: tree, reason: 'replace the tree of an earlier flotilla install' });
  }
  actions.push({
    kind: 'copy-tree',
    from: o.source,
    to: tree,
    reason: 'the code, its node_modules and the bundled Node',
  });
  actions.push({ kind: 'mkdir', path: `${prefix}/bin`, mode: 0o755, reason: 'command links' });
  for (const l of links) {
    if ((o.paths.get(l) ?? { kind: 'absent' }).kind === 'absent')
      actions.push({ kind: 'link', path: l, target: `${tree}/bin/flotilla`, reason: 'command on PATH' });
  }
  actions.push({ kind: 'mkdir', path: req.dataDir, mode: 0o700, reason: "the agent's data directory" });
  actions.push({
    kind: 'mkdir',
    path: req.configFile.replace(/\/[^/]+$/, ''),
    mode: 0o755,
    reason: 'configuration directory',
  });
  if (conf !== o.existingConfig) {
    actions.push({
      kind: 'write',
      path: req.configFile,
      content: conf,
      mode: 0o644,
      reason: o.existingConfig === undefined ? 'default configuration' : 'set the keys given as flags',
    });
  }
  for (const u of UNIT_NAMES) {
    const text = serviceUnit(units[u]!, tree);
    actions.push({
      kind: 'write',
      path: `${req.unitDir}/${u}`,
      content: text,
      mode: 0o644,
      reason: 'systemd unit',
    });
  }
  actions.push({
    kind: 'write',
    path: `${tree}/${MANIFEST}`,
    content: `${JSON.stringify({ prefix: prefix || '/', tree, links, units: unitPaths }, null, 2)}\n`,
    mode: 0o644,
    reason: 'what was installed, for flotilla uninstall',
  });
  actions.push({
    kind: 'systemctl',
    argv: ['daemon-reload'],
    undo: ['daemon-reload'],
    reason: 'load the units',
  });
  actions.push({
    kind: 'systemctl',
    argv: ['enable', ...ENABLE_UNITS],
    undo: ['disable', ...ENABLE_UNITS],
    reason: 'start at boot',
  });
  if (req.start) {
    actions.push({
      kind: 'systemctl',
      argv: ['start', ...START_UNITS],
      undo: ['stop', ...START_UNITS],
      reason: 'start the agent (waits for READY=1)',
    });
  }
  return { actions, manifest: { prefix: prefix || '/', tree, links, units: unitPaths } };
}

export interface UninstallObserved {
  uid: number;
  systemdRunning: boolean;
  dpkgInstalled: boolean;
  manifest: Plan['manifest'] | undefined;
  /** Where the manifest was looked for (for the message). */
  manifestPath: string;
}

export function planUninstall(
  req: { purge: boolean; configDir: string; dataDir: string },
  o: UninstallObserved,
): Action[] {
  if (o.uid !== 0) refuse(`flotilla uninstall must run as root (uid is ${o.uid})`);
  if (o.dpkgInstalled)
    refuse('flotilla is installed as a Debian package here: remove it with dpkg -r (or --purge)', {
      cause: 'dpkg',
    });
  if (!o.manifest)
    refuse(`no ${o.manifestPath}: this flotilla was not installed by flotilla install`, {
      path: o.manifestPath,
    });
  const m = o.manifest;
  const actions: Action[] = [];
  // The units this install put there (an older install may have put fewer).
  const names = m.units.map((u) => u.replace(/^.*\//, ''));
  if (o.systemdRunning) {
    actions.push({
      kind: 'systemctl',
      argv: ['stop', ...names],
      reason: 'stop the agent: a stop is a leave (its units stop, the machine leaves the cluster)',
    });
  }
  actions.push({ kind: 'systemctl', argv: ['disable', ...names], reason: 'no start at boot' });
  for (const u of m.units) actions.push({ kind: 'remove', path: u, reason: 'systemd unit' });
  for (const l of m.links) actions.push({ kind: 'remove', path: l, reason: 'command link' });
  actions.push({ kind: 'remove', path: m.tree, reason: 'the installed tree' });
  if (req.purge) {
    actions.push({ kind: 'remove', path: req.dataDir, reason: '--purge: the agent data' });
    actions.push({ kind: 'remove', path: req.configDir, reason: '--purge: the configuration' });
    actions.push({ kind: 'remove', path: '/run/flotilla', reason: '--purge: runtime state' });
  }
  if (o.systemdRunning)
    actions.push({ kind: 'systemctl', argv: ['daemon-reload'], reason: 'forget the units' });
  return actions;
}
