/**
 * The `coreos.*` service sections, planned into the files flotilla's own services read
 * (host-tools.md §1.5; CoreOS wrote systemd drop-ins for etcd.service, etcd2.service and
 * fleet.service, which flotilla does not ship):
 *
 *   coreos.etcd2, coreos.etcd  → /etc/flotilla/etcd-member.env (ETCD_* = …, CoreOS's names and
 *                                declaration order; etcd before etcd2), read by
 *                                systemd/etcd-member.service (Debian's etcd-server); the unit is
 *                                enabled and started (see plan.ts `startAfterApply`). ETCD_DATA_DIR
 *                                defaults to /var/lib/etcd-member.
 *   coreos.fleet               → /etc/flotilla/flotilla.conf (fleet's key names, which the agent
 *                                reads; other keys in the file are kept); flotilla.service is
 *                                enabled and started (`startAfterApply`). Checked with the agent's
 *                                own config parser.
 *   coreos.flannel             → /run/flannel/options.env (FLANNELD_* lines, no trailing newline),
 *                                what CoreOS's code did (its docs said drop-in); no unit.
 *   coreos.update, .locksmith  → /etc/flotilla/update.conf (REBOOT_STRATEGY, GROUP, SERVER,
 *                                LOCKSMITHD_*, REBOOT_WINDOW_*): lines of a key are replaced in
 *                                place, new keys appended sorted, as CoreOS rewrote update.conf.
 *                                Checked with the reboot manager's own parser.
 *   coreos.oem                 → /etc/oem-release (only when `id` is set).
 *
 * A file holding a password (etcd_password, LOCKSMITHD_ETCD_PASSWORD …) is written 0600.
 * Pure: the current text of the merged files comes in as `observed`.
 */
import { loadConfig } from '../daemon/config.js';
import { FlotillaError } from '../lib/errors.js';
import { parseUpdateConf, rebootConfigFrom } from '../locksmith/config.js';
import type { PlannedAction } from '../target/types.js';
import type { CloudConfig, Scalar, Section } from './config.js';

export const ETCD_MEMBER_ENV = '/etc/flotilla/etcd-member.env';
export const FLOTILLA_CONF = '/etc/flotilla/flotilla.conf';
export const UPDATE_CONF = '/etc/flotilla/update.conf';
export const FLANNEL_ENV = '/run/flannel/options.env';
export const OEM_RELEASE = '/etc/oem-release';
export const DEFAULT_ETCD_DATA_DIR = '/var/lib/etcd-member';

const SECRET = /PASSWORD/i;

function bad(line: number, key: string, msg: string): FlotillaError {
  return new FlotillaError('E_CLOUDCONFIG', `line ${line}: ${key}: ${msg}`, { line, key });
}

function text(v: Scalar): string {
  return typeof v === 'string' ? v : String(v);
}

/** A value for an env/INI line: bare when plain, else double-quoted with `\` and `"` escaped. */
function quote(v: string): string {
  if (/^[A-Za-z0-9_./:,=@%+-]*$/.test(v)) return v;
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function checkOneLine(s: Section, section: string): void {
  for (const f of s.fields) {
    if (/[\r\n\0]/.test(text(f.value)))
      throw bad(f.line, `coreos.${section}.${f.key}`, 'must be a single line (no newline or NUL)');
  }
}

function hasSecret(lines: string[]): boolean {
  return lines.some((l) => SECRET.test(l.split('=')[0] ?? '') && !/=\s*$/.test(l));
}

function etcdMember(cfg: CloudConfig, warn: (m: string) => void): PlannedAction[] {
  const { etcd, etcd2 } = cfg.coreos;
  if (etcd.fields.length === 0 && etcd2.fields.length === 0) return [];
  checkOneLine(etcd, 'etcd');
  checkOneLine(etcd2, 'etcd2');
  if (etcd.fields.length > 0) {
    warn(
      `line ${etcd.line}: coreos.etcd is etcd 0.4's configuration; etcd-member runs etcd v3, which ignores ETCD_ADDR, ETCD_PEER_ADDR and other 0.4 options (use coreos.etcd2)`,
    );
  }
  const env = new Map<string, string>();
  for (const f of [...etcd.fields, ...etcd2.fields]) {
    env.delete(f.env!);
    env.set(f.env!, text(f.value));
  }
  if (!env.has('ETCD_DATA_DIR')) env.set('ETCD_DATA_DIR', DEFAULT_ETCD_DATA_DIR);
  const lines = [...env].map(([k, v]) => `${k}=${quote(v)}`);
  const reason = etcd2.fields.length > 0 ? 'coreos.etcd2' : 'coreos.etcd';
  return [
    {
      action: {
        kind: 'file',
        path: ETCD_MEMBER_ENV,
        contents: Buffer.from(`${lines.join('\n')}\n`),
        mode: hasSecret(lines) ? 0o600 : 0o644,
      },
      reason,
    },
    { action: { kind: 'unit', name: 'etcd-member.service', enable: true }, reason },
  ];
}

/** Replace `KEY=` lines of `current` in place, append the rest; `sortNew` as update.conf did. */
function mergeLines(
  current: string | undefined,
  set: [string, string][],
  sortNew: boolean,
  keyOf: (l: string) => string | undefined,
): string {
  const lines = current === undefined || current === '' ? [] : current.replace(/\n$/, '').split('\n');
  const pending = new Map(set);
  const out = lines.map((l) => {
    const k = keyOf(l);
    if (k !== undefined && pending.has(k)) {
      const line = `${k}=${pending.get(k)!}`;
      pending.delete(k);
      return line;
    }
    return l;
  });
  const rest = [...pending];
  if (sortNew) rest.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [k, v] of rest) out.push(`${k}=${v}`);
  return `${out.join('\n')}\n`;
}

function fleet(cfg: CloudConfig, observed: string | undefined): PlannedAction[] {
  const s = cfg.coreos.fleet;
  if (s.fields.length === 0) return [];
  checkOneLine(s, 'fleet');
  const set: [string, string][] = s.fields.map((f) => [f.key, quote(text(f.value))]);
  const body = mergeLines(observed, set, false, (l) =>
    /^\s*([A-Za-z0-9_-]+)\s*=/.exec(l)?.[1]?.replace(/-/g, '_'),
  );
  try {
    loadConfig({ configFile: FLOTILLA_CONF, env: {}, readFile: () => body });
  } catch (err) {
    const msg = (err as Error).message;
    const key = /(?:^|: )([a-z_]+): /.exec(msg.replace(/^[^:]*:\d+: /, ''))?.[1];
    const f = s.fields.find((x) => x.key === key) ?? s.fields[0]!;
    throw bad(f.line, `coreos.fleet.${f.key}`, msg.replace(/^[^:]*:\d+: [a-z_]+: /, ''));
  }
  const secret = s.fields.some((f) => f.key === 'etcd_password' || f.key === 'etcd_username');
  return [
    {
      action: {
        kind: 'file',
        path: FLOTILLA_CONF,
        contents: Buffer.from(body),
        mode: secret ? 0o600 : 0o644,
      },
      reason: 'coreos.fleet',
    },
    {
      action: { kind: 'unit', name: 'flotilla.service', enable: true },
      reason: 'coreos.fleet',
    },
  ];
}

function flannel(cfg: CloudConfig): PlannedAction[] {
  const s = cfg.coreos.flannel;
  if (s.fields.length === 0) return [];
  checkOneLine(s, 'flannel');
  const lines = s.fields.map((f) => `${f.env!}=${text(f.value)}`);
  return [
    {
      action: {
        kind: 'file',
        path: FLANNEL_ENV,
        contents: Buffer.from(lines.join('\n')),
        mode: hasSecret(lines) ? 0o600 : 0o644,
      },
      reason: 'coreos.flannel',
    },
  ];
}

function update(cfg: CloudConfig, observed: string | undefined): PlannedAction[] {
  const fields = [...cfg.coreos.update.fields, ...cfg.coreos.locksmith.fields];
  if (fields.length === 0) return [];
  checkOneLine(cfg.coreos.update, 'update');
  checkOneLine(cfg.coreos.locksmith, 'locksmith');
  const set: [string, string][] = fields.map((f) => [f.env!, text(f.value)]);
  const body = mergeLines(observed, set, true, (l) => /^([A-Za-z0-9_]+)=/.exec(l)?.[1]);
  try {
    rebootConfigFrom(parseUpdateConf(body, UPDATE_CONF));
  } catch (err) {
    const field = (err as FlotillaError).details?.field as string | undefined;
    const envOf = (k: string | undefined) => fields.find((f) => f.env === k || `LOCKSMITHD_${f.env!}` === k);
    const f = envOf(field) ?? fields[0]!;
    const section = cfg.coreos.update.fields.includes(f) ? 'update' : 'locksmith';
    throw bad(f.line, `coreos.${section}.${f.key}`, (err as Error).message);
  }
  return [
    {
      action: {
        kind: 'file',
        path: UPDATE_CONF,
        contents: Buffer.from(body),
        mode: fields.some((f) => SECRET.test(f.env!)) ? 0o600 : 0o644,
      },
      reason: cfg.coreos.update.fields.length > 0 ? 'coreos.update' : 'coreos.locksmith',
    },
  ];
}

function oem(cfg: CloudConfig): PlannedAction[] {
  const get = (k: string) => text(cfg.coreos.oem.fields.find((f) => f.key === k)?.value ?? '');
  if (get('id') === '') return [];
  checkOneLine(cfg.coreos.oem, 'oem');
  const body =
    `ID=${get('id')}\nVERSION_ID=${get('version_id')}\nNAME=${JSON.stringify(get('name'))}\n` +
    `HOME_URL=${JSON.stringify(get('home_url'))}\nBUG_REPORT_URL=${JSON.stringify(get('bug_report_url'))}\n`;
  return [
    {
      action: { kind: 'file', path: OEM_RELEASE, contents: Buffer.from(body), mode: 0o644 },
      reason: 'coreos.oem',
    },
  ];
}

export interface ServicePlan {
  /** In §1.6's file order: oem-release, update.conf (then the caller's /etc/hosts), flannel, etcd, fleet. */
  oem: PlannedAction[];
  update: PlannedAction[];
  flannel: PlannedAction[];
  /** Files and units of etcd-member and the agent. */
  etcd: PlannedAction[];
  fleet: PlannedAction[];
}

export function planServices(
  cfg: CloudConfig,
  observed: Readonly<Record<string, string | undefined>>,
  warn: (m: string) => void,
): ServicePlan {
  return {
    oem: oem(cfg),
    update: update(cfg, observed[UPDATE_CONF]),
    flannel: flannel(cfg),
    etcd: etcdMember(cfg, warn),
    fleet: fleet(cfg, observed[FLOTILLA_CONF]),
  };
}
