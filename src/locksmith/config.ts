/**
 * Reboot coordination settings, read as locksmithd read them: `/etc/flotilla/update.conf` (the
 * update.conf CoreOS kept in /etc/coreos; our first-boot writes it from cloud-config
 * `coreos.update`/`coreos.locksmith`), then the environment, which wins.
 *
 *   REBOOT_STRATEGY                   reboot (default) | etcd-lock | best-effort | off
 *   LOCKSMITHD_REBOOT_WINDOW_START    [Day ]HH:MM   (fallback: REBOOT_WINDOW_START)
 *   LOCKSMITHD_REBOOT_WINDOW_LENGTH   Go duration   (fallback: REBOOT_WINDOW_LENGTH); both or neither
 *   LOCKSMITHD_GROUP                  the semaphore group (default "")
 *   LOCKSMITHD_DRAIN_TIMEOUT          how long to wait for units to run elsewhere (default 5m)
 *   LOCKSMITHD_LOCK_TTL               a holder gone this long loses the lock (default 10m)
 *   LOCKSMITHD_WINDOW_ZONE            local (default, as locksmith) | utc
 *
 * `best-effort` (locksmith ≤ 0.5) takes the lock when the registry is a cluster (etcd) and reboots
 * without it on a single machine. Each bad value is an E_CONFIG error naming its key (and the file
 * line it came from).
 */
import { readFileSync } from 'node:fs';
import { FlotillaError, isErrno } from '../lib/errors.js';
import { parseGoDuration, parseWindow, type RebootWindow, type Zone } from './window.js';
import { HOST_PATHS } from '../lib/paths.js';

export const UPDATE_CONF: string = HOST_PATHS.updateConf;
export const STRATEGIES = ['reboot', 'etcd-lock', 'best-effort', 'off'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export interface RebootConfig {
  strategy: Strategy;
  window?: RebootWindow;
  zone: Zone;
  group: string;
  drainTimeoutMs: number;
  lockTtlSec: number;
}

export const DEFAULTS: RebootConfig = {
  strategy: 'reboot',
  zone: 'local',
  group: '',
  drainTimeoutMs: 5 * 60_000,
  lockTtlSec: 600,
};

interface Setting {
  value: string;
  /** `update.conf:3` or `environment`. */
  from: string;
}

/** KEY=VALUE lines (shell style: `#` comments, optional single or double quotes, `export `). */
export function parseUpdateConf(text: string, file = UPDATE_CONF): Map<string, Setting> {
  const out = new Map<string, Setting>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new FlotillaError('E_CONFIG', `${file}:${i + 1}: expected KEY=VALUE`, { line: i + 1 });
    let v = m[2]!.trim();
    const q = /^(["'])(.*)\1$/.exec(v);
    if (q) v = q[2]!;
    else v = v.replace(/\s+#.*$/, '');
    out.set(m[1]!, { value: v, from: `${file}:${i + 1}` });
  });
  return out;
}

/** Read the file (absent: no settings) and overlay `env`; validate everything. */
export function loadRebootConfig(env: NodeJS.ProcessEnv = process.env, file = UPDATE_CONF): RebootConfig {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) {
      throw new FlotillaError('E_CONFIG', `${file}: ${(err as Error).message}`, { file });
    }
  }
  const settings = parseUpdateConf(text, file);
  for (const [k, v] of Object.entries(env))
    if (v !== undefined) settings.set(k, { value: v, from: 'environment' });
  return rebootConfigFrom(settings);
}

export function rebootConfigFrom(settings: ReadonlyMap<string, Setting>): RebootConfig {
  const get = (k: string) => settings.get(k);
  const bad = (k: string, s: Setting, msg: string) =>
    new FlotillaError('E_CONFIG', `${k} (${s.from}): ${msg}`, { field: k });
  const cfg: RebootConfig = { ...DEFAULTS };
  const strategy = get('REBOOT_STRATEGY');
  if (strategy && strategy.value !== '') {
    if (!(STRATEGIES as readonly string[]).includes(strategy.value)) {
      throw bad(
        'REBOOT_STRATEGY',
        strategy,
        `${JSON.stringify(strategy.value)} is not one of ${STRATEGIES.join(', ')}`,
      );
    }
    cfg.strategy = strategy.value as Strategy;
  }
  const pick = (a: string, b: string): [string, Setting] | undefined => {
    const s = get(a);
    if (s && s.value !== '') return [a, s];
    const t = get(b);
    return t && t.value !== '' ? [b, t] : undefined;
  };
  const start = pick('LOCKSMITHD_REBOOT_WINDOW_START', 'REBOOT_WINDOW_START');
  const length = pick('LOCKSMITHD_REBOOT_WINDOW_LENGTH', 'REBOOT_WINDOW_LENGTH');
  if ((start === undefined) !== (length === undefined)) {
    const [k, s] = (start ?? length)!;
    throw bad(
      k,
      s,
      `a reboot window needs both a start and a length (${k.includes('START') ? 'LOCKSMITHD_REBOOT_WINDOW_LENGTH' : 'LOCKSMITHD_REBOOT_WINDOW_START'} is not set)`,
    );
  }
  if (start && length) {
    try {
      cfg.window = parseWindow(start[1].value, length[1].value, start[0], length[0]);
    } catch (err) {
      const f = (err as FlotillaError).details?.field === start[0] ? start : length;
      throw bad(f[0], f[1], (err as Error).message.replace(/^[A-Z_]+: /, ''));
    }
  }
  const group = get('LOCKSMITHD_GROUP');
  if (group) cfg.group = group.value;
  const zone = get('LOCKSMITHD_WINDOW_ZONE');
  if (zone && zone.value !== '') {
    const z = zone.value.toLowerCase();
    if (z !== 'local' && z !== 'utc')
      throw bad('LOCKSMITHD_WINDOW_ZONE', zone, `${JSON.stringify(zone.value)} must be local or utc`);
    cfg.zone = z;
  }
  const dur = (k: string, min: number): number | undefined => {
    const s = get(k);
    if (!s || s.value === '') return undefined;
    const ms = parseGoDuration(k, s.value);
    if (ms < min) throw bad(k, s, `${JSON.stringify(s.value)} must be at least ${min / 1000}s`);
    return ms;
  };
  const drain = dur('LOCKSMITHD_DRAIN_TIMEOUT', 0);
  if (drain !== undefined) cfg.drainTimeoutMs = drain;
  const ttl = dur('LOCKSMITHD_LOCK_TTL', 5000);
  if (ttl !== undefined) cfg.lockTtlSec = Math.round(ttl / 1000);
  return cfg;
}
