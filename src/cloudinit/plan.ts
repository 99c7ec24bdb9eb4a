/**
 * The cloud-config planner (pure): a parsed config, the datasource's metadata and what the target
 * holds now → the actions, in coreos-cloudinit's apply order (host-tools.md §1.6):
 *
 *   1. hostname (user-data wins over the metadata's)
 *   2. users: each user, then its keys (key set `-ssh-key-name`, default coreos-cloudinit)
 *   3. top-level ssh_authorized_keys (plus the metadata's keys) for `core` (created, password
 *      locked, when the image has no `core` and `users` does not define it)
 *   4. files: write_files, /etc/oem-release, /etc/flotilla/update.conf, /etc/hosts,
 *      /run/flannel/options.env, /etc/flotilla/etcd-member.env, /etc/flotilla/flotilla.conf, then
 *      the COREOS_*_IPV* merge into /etc/environment unless write_files wrote that file
 *   5. -convert-netconf network units from the metadata
 *   6. units: coreos.units, then etcd-member.service and flotilla.service (enabled here, started
 *      after the apply without waiting: `startAfterApply`); systemd-networkd is restarted once when
 *      a network unit was written (their `command` is ignored, as in CoreOS)
 *
 * Every check runs here, before anything is applied: a bad path, unit name, user name or an
 * offline-impossible key import is an E_CLOUDCONFIG error naming the key and line. Planning the
 * same input twice gives the same actions.
 */
import { posix } from 'node:path';
import type { Metadata } from '../datasource/types.js';
import { FlotillaError, isCode } from '../lib/errors.js';
import type { AuthorizedKeysAction, PlannedAction, UserAction } from '../target/types.js';
import { validateUnitName } from '../unit/name.js';
import type { CloudConfig, Unit, User, WriteFile } from './config.js';
import type { Substitutions } from './env.js';
import { planServices } from './services.js';

export const DEFAULT_SSH_KEY_NAME = 'coreos-cloudinit';
export const ETC_ENVIRONMENT = '/etc/environment';

export interface Observed {
  /** Current text of the files the plan merges into; absent when the file does not exist. */
  files: Readonly<Record<string, string | undefined>>;
  /** The target's hostname now. */
  hostname: string;
}

/** Files whose current text the planner needs (the caller reads them into `Observed.files`). */
export const OBSERVED_FILES = [ETC_ENVIRONMENT, '/etc/flotilla/update.conf', '/etc/flotilla/flotilla.conf'];

export interface PlanInput {
  config: CloudConfig;
  metadata: Metadata;
  substitutions: Substitutions;
  observed: Observed;
  sshKeyName?: string;
  /** Add the metadata's network units (-convert-netconf). */
  convertNetconf?: boolean;
}

export interface Plan {
  actions: PlannedAction[];
  /**
   * Units to start after the apply without waiting for their jobs (`systemctl start --no-block`):
   * etcd-member.service and flotilla.service. At boot flotilla-cloudinit.service is ordered before
   * them, so a start job that waited would wait for this very run to end; queued without waiting,
   * systemd starts them as soon as the run is done. On a live system only.
   */
  startAfterApply: string[];
  /** Things the operator should know (logged as warnings); never secrets. */
  warnings: string[];
}

function bad(line: number, key: string, msg: string): FlotillaError {
  return new FlotillaError('E_CLOUDCONFIG', `line ${line}: ${key}: ${msg}`, { line, key });
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/;

function checkAccountName(line: number, key: string, name: string): void {
  if (name.length > 32 || !NAME_RE.test(name))
    throw bad(line, key, `${JSON.stringify(name)} is not a valid user or group name`);
}

function checkHostname(line: number, host: string): void {
  if (
    host.length > 253 ||
    !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)
  )
    throw bad(line, 'hostname', `${JSON.stringify(host)} is not a valid hostname`);
}

/** `path` made absolute inside the target; refuses `..` that would climb out of the root. */
export function targetPath(line: number, key: string, path: string): string {
  if (path === '') throw bad(line, key, 'a path is required');
  if (path.includes('\0')) throw bad(line, key, 'contains a NUL byte');
  let depth = 0;
  for (const seg of path.split('/')) {
    if (seg === '..') depth--;
    else if (seg !== '' && seg !== '.') depth++;
    if (depth < 0) throw bad(line, key, `${JSON.stringify(path)} escapes the root`);
  }
  const abs = posix.normalize(`/${path}`);
  if (abs === '/') throw bad(line, key, `${JSON.stringify(path)} is the root directory, not a file`);
  return abs.replace(/\/$/, '');
}

function owner(
  line: number,
  key: string,
  spec: string,
): { user?: string | number; group?: string | number } | undefined {
  if (spec === '') return undefined;
  const m = /^([^:.]*)(?:[:.](.*))?$/.exec(spec)!;
  const id = (s: string | undefined) =>
    s === undefined || s === '' ? undefined : /^\d+$/.test(s) ? Number(s) : s;
  const user = id(m[1]);
  const group = id(m[2]);
  for (const n of [user, group]) if (typeof n === 'string') checkAccountName(line, key, n);
  if (user === undefined && group === undefined)
    throw bad(line, key, `${JSON.stringify(spec)} is not user:group`);
  return { ...(user !== undefined ? { user } : {}), ...(group !== undefined ? { group } : {}) };
}

function fileAction(f: WriteFile): PlannedAction {
  const key = `write_files[${f.index}]`;
  const path = targetPath(f.pathLine, `${key}.path`, f.path);
  if (f.mode > 0o7777) throw bad(f.line, `${key}.permissions`, `0${f.mode.toString(8)} is not a file mode`);
  const own = owner(f.line, `${key}.owner`, f.owner);
  return {
    action: { kind: 'file', path, contents: f.content, mode: f.mode, ...(own ? { owner: own } : {}) },
    reason: key,
  };
}

function keysAction(user: string, setName: string, keys: string[]): AuthorizedKeysAction {
  return { kind: 'authorized-keys', user, setName, keys: keys.map((k) => k.trim()).filter((k) => k !== '') };
}

function userActions(u: User, setName: string, warnings: string[]): PlannedAction[] {
  const key = `users[${u.index}]`;
  if (u.name === '') {
    warnings.push(`line ${u.line}: ${key}: a user without a name is skipped`);
    return [];
  }
  checkAccountName(u.line, `${key}.name`, u.name);
  if (
    u.coreosSshImportGithub !== '' ||
    u.coreosSshImportGithubUsers.length > 0 ||
    u.coreosSshImportUrl !== ''
  ) {
    const which =
      u.coreosSshImportGithub !== ''
        ? 'coreos_ssh_import_github'
        : u.coreosSshImportGithubUsers.length > 0
          ? 'coreos_ssh_import_github_users'
          : 'coreos_ssh_import_url';
    throw bad(
      u.line,
      `${key}.${which}`,
      'importing keys from GitHub or a URL is not supported: first boot does not fetch keys over the network (it may be offline and the fetch was unreliable in coreos-cloudinit too); list the keys in ssh_authorized_keys',
    );
  }
  if (u.primaryGroup !== '') checkAccountName(u.line, `${key}.primary_group`, u.primaryGroup);
  u.groups.forEach((g) => checkAccountName(u.line, `${key}.groups`, g));
  if (u.homedir !== '') targetPath(u.line, `${key}.homedir`, u.homedir);
  const a: UserAction = { kind: 'user', name: u.name };
  if (u.passwd !== '') a.passwordHash = u.passwd;
  if (u.gecos !== '') a.gecos = u.gecos;
  if (u.homedir !== '') a.homeDir = u.homedir;
  if (u.noCreateHome) a.noCreateHome = true;
  if (u.primaryGroup !== '') a.primaryGroup = u.primaryGroup;
  if (u.groups.length > 0) a.groups = [...u.groups];
  if (u.noUserGroup) a.noUserGroup = true;
  if (u.noLogInit) a.noLogInit = true;
  if (u.shell !== '') a.shell = u.shell;
  if (u.system) a.system = true;
  const out: PlannedAction[] = [{ action: a, reason: key }];
  if (u.sshAuthorizedKeys.length > 0)
    out.push({
      action: keysAction(u.name, setName, u.sshAuthorizedKeys),
      reason: `${key}.ssh_authorized_keys`,
    });
  return out;
}

const NETWORK = /\.(network|netdev|link)$/;

function unitActions(u: Unit, warnings: string[]): { actions: PlannedAction[]; network: boolean } {
  const key = `coreos.units[${u.index}]`;
  if (u.name === '') {
    warnings.push(`line ${u.line}: ${key}: a unit without a name is skipped`);
    return { actions: [], network: false };
  }
  const isNetwork = NETWORK.test(u.name);
  if (!isNetwork) {
    try {
      validateUnitName(u.name);
    } catch (err) {
      if (isCode(err, 'E_UNIT_NAME')) throw bad(u.line, `${key}.name`, (err as Error).message);
      throw err;
    }
  } else if (!/^[A-Za-z0-9_.@:-]+$/.test(u.name)) {
    throw bad(u.line, `${key}.name`, `${JSON.stringify(u.name)} is not a valid unit name`);
  }
  const dropIns: { name: string; contents: string }[] = [];
  for (const d of u.dropIns) {
    if (d.name === '' || d.content === '') {
      warnings.push(`line ${u.line}: ${key}.drop_ins: a drop-in without a name or content is skipped`);
      continue;
    }
    if (d.name.includes('/') || d.name === '.' || d.name === '..' || /[\0\n]/.test(d.name))
      throw bad(u.line, `${key}.drop_ins`, `${JSON.stringify(d.name)} is not a file name`);
    if (!d.name.endsWith('.conf'))
      warnings.push(
        `line ${u.line}: ${key}.drop_ins: systemd reads only *.conf drop-ins, not ${JSON.stringify(d.name)}`,
      );
    dropIns.push({ name: d.name, contents: d.content });
  }
  if (isNetwork) {
    // networkd units live in /etc|/run/systemd/network; there is nothing to enable or start.
    const dir = u.runtime ? '/run/systemd/network' : '/etc/systemd/network';
    const out: PlannedAction[] = [];
    if (u.content !== '')
      out.push({
        action: { kind: 'file', path: `${dir}/${u.name}`, contents: Buffer.from(u.content), mode: 0o644 },
        reason: key,
      });
    for (const d of dropIns)
      out.push({
        action: {
          kind: 'file',
          path: `${dir}/${u.name}.d/${d.name}`,
          contents: Buffer.from(d.contents),
          mode: 0o644,
        },
        reason: `${key}.drop_ins`,
      });
    if (u.mask)
      out.push({
        action: { kind: 'link', path: `${dir}/${u.name}`, target: '/dev/null', hard: false },
        reason: `${key}.mask`,
      });
    if (u.command !== '')
      warnings.push(
        `line ${u.line}: ${key}.command is ignored for network units; systemd-networkd is restarted instead`,
      );
    return { actions: out, network: true };
  }
  return {
    actions: [
      {
        action: {
          kind: 'unit',
          name: u.name,
          ...(u.content !== '' ? { contents: u.content } : {}),
          ...(dropIns.length > 0 ? { dropIns } : {}),
          ...(u.runtime ? { runtime: true } : {}),
          ...(u.enable ? { enable: true } : {}),
          ...(u.mask ? { mask: true } : {}),
          ...(u.command !== '' ? { command: u.command } : {}),
        },
        reason: key,
      },
    ],
    network: false,
  };
}

/** /etc/environment with COREOS_*_IPV* merged in (§1.4): lines kept, keys replaced, new ones sorted. */
export function mergeEnvironment(current: string | undefined, vars: Record<string, string>): string {
  const lines = current === undefined || current === '' ? [] : current.replace(/\n$/, '').split('\n');
  const pending = new Map(Object.entries(vars).filter(([k, v]) => /^[a-zA-Z0-9_]+$/.test(k) && v !== ''));
  const out = lines.map((l) => {
    const k = /^([a-zA-Z0-9_]+)=/.exec(l)?.[1];
    if (k !== undefined && pending.has(k)) {
      const v = pending.get(k)!;
      pending.delete(k);
      return `${k}=${v}`;
    }
    return l;
  });
  for (const k of [...pending.keys()].sort()) out.push(`${k}=${pending.get(k)!}`);
  return `${out.join('\n')}\n`;
}

export function planCloudConfig(input: PlanInput): Plan {
  const { config: cfg, metadata: md, observed } = input;
  const setName = input.sshKeyName || DEFAULT_SSH_KEY_NAME;
  const warnings: string[] = [];
  const actions: PlannedAction[] = [];

  // 1. hostname
  let hostname = cfg.hostname;
  if (hostname !== '' && md.hostname) {
    warnings.push(
      `line ${cfg.hostnameLine}: hostname ${JSON.stringify(hostname)} from user-data wins over the metadata's ${JSON.stringify(md.hostname)}`,
    );
  }
  if (hostname === '' && md.hostname) hostname = md.hostname;
  if (hostname !== '') {
    checkHostname(cfg.hostnameLine, hostname);
    actions.push({
      action: { kind: 'hostname', hostname },
      reason: cfg.hostname !== '' ? 'hostname' : 'metadata hostname',
    });
  }

  // 2. users, 3. keys for core
  for (const u of cfg.users) actions.push(...userActions(u, setName, warnings));
  const mdKeys = Object.keys(md.sshPublicKeys)
    .sort()
    .map((k) => md.sshPublicKeys[k]!);
  const coreKeys = [...cfg.sshAuthorizedKeys, ...mdKeys];
  if (coreKeys.length > 0 && !cfg.users.some((u) => u.name === 'core')) {
    // CoreOS always had `core`; a Debian image may not. Creating it (password locked) is a no-op
    // where it exists (an existing user gets only a hash and keys, and there is no hash here).
    actions.push({ action: { kind: 'user', name: 'core' }, reason: 'ssh_authorized_keys (user core)' });
  }
  if (coreKeys.length > 0)
    actions.push({
      action: keysAction('core', setName, coreKeys),
      reason:
        mdKeys.length > 0 && cfg.sshAuthorizedKeys.length === 0 ? 'metadata ssh keys' : 'ssh_authorized_keys',
    });

  // 4. files
  const services = planServices(cfg, observed.files, (m) => warnings.push(m));
  const files: PlannedAction[] = cfg.writeFiles.map(fileAction);
  files.push(...services.oem, ...services.update);
  if (cfg.manageEtcHosts !== '') {
    if (cfg.manageEtcHosts !== 'localhost')
      throw bad(cfg.manageEtcHostsLine, 'manage_etc_hosts', 'Invalid option to manage_etc_hosts');
    const name = hostname || observed.hostname;
    files.push({
      action: { kind: 'file', path: '/etc/hosts', contents: Buffer.from(`127.0.0.1 ${name}\n`), mode: 0o644 },
      reason: 'manage_etc_hosts',
    });
  }
  files.push(...services.flannel);
  const fileOnly = (p: PlannedAction[]) => p.filter((a) => a.action.kind === 'file');
  const unitOnly = (p: PlannedAction[]) => p.filter((a) => a.action.kind === 'unit');
  files.push(...fileOnly(services.etcd), ...fileOnly(services.fleet));
  const seen = new Map<string, string>();
  for (const f of files) {
    const p = (f.action as { path: string }).path;
    if (seen.has(p))
      warnings.push(`${f.reason} writes ${p} again (after ${seen.get(p)!}); the last one wins`);
    seen.set(p, f.reason);
  }
  actions.push(...files);
  if (!seen.has(ETC_ENVIRONMENT) && Object.keys(input.substitutions.environment).length > 0) {
    actions.push({
      action: {
        kind: 'file',
        path: ETC_ENVIRONMENT,
        contents: Buffer.from(
          mergeEnvironment(observed.files[ETC_ENVIRONMENT], input.substitutions.environment),
        ),
        mode: 0o644,
      },
      reason: 'COREOS_*_IPV* from the metadata',
    });
  }

  // 5. network units from the metadata
  let network = false;
  if (input.convertNetconf) {
    for (const n of md.networkUnits ?? []) {
      if (!/^[A-Za-z0-9_.@:-]+$/.test(n.name))
        throw bad(0, 'convert-netconf', `${JSON.stringify(n.name)} is not a unit name`);
      actions.push({
        action: {
          kind: 'file',
          path: `/run/systemd/network/${n.name}`,
          contents: Buffer.from(n.contents),
          mode: 0o644,
        },
        reason: 'convert-netconf',
      });
      network = true;
    }
  }

  // 6. units
  for (const u of cfg.coreos.units) {
    const r = unitActions(u, warnings);
    actions.push(...r.actions);
    network ||= r.network;
  }
  actions.push(...unitOnly(services.etcd), ...unitOnly(services.fleet));
  if (network)
    actions.push({
      action: { kind: 'unit', name: 'systemd-networkd.service', command: 'restart' },
      reason: 'network units',
    });
  const startAfterApply = [...unitOnly(services.etcd), ...unitOnly(services.fleet)].map(
    (a) => (a.action as { name: string }).name,
  );
  return { actions, warnings, startAfterApply };
}
