/**
 * OS update settings, from /etc/flotilla/update.conf (the file first boot writes from cloud-config
 * `coreos.update`, shared with the reboot manager) overlaid by the environment, same key names.
 * Every bad value is E_CONFIG naming the key and where it came from. The write throttle can also
 * be set in flotilla.conf (`update_io_weight`, `update_cpu_weight`, `update_nice`,
 * `update_io_write_bandwidth_max`, passed in as `agent`); update.conf and the environment win.
 *
 *   SERVER                      the bundle manifest URL (ends in .json), or a base URL under which
 *                               <GROUP>/<BOARD>/manifest.json is read
 *                               (bundle transport); for Omaha, the endpoint requests are POSTed to
 *   UPDATE_TRANSPORT            bundle or omaha; default omaha when SERVER's path ends in /v1/update/
 *                               (CoreOS's and Nebraska's endpoint), else bundle
 *   COREOS_RELEASE_APPID        the Omaha app id (default CoreOS's {e96281a6-…})
 *   GROUP                       the channel (default stable)
 *   BOARD                       this machine's board (fallback COREOS_RELEASE_BOARD; default amd64-usr)
 *   CURRENT_VERSION             the running OS version (fallback COREOS_RELEASE_VERSION, then
 *                               VERSION_ID of /etc/os-release; default 0.0.0)
 *   UPDATE_DISK                 the disk holding the A/B slots (device or image file)
 *   UPDATE_PARTITION_A/B        optional partition devices to write instead of disk + offset
 *   UPDATE_GRUBENV              grubenv mirror of the slot flags (default /boot/grub/grubenv if present)
 *   UPDATE_KEYS_DIR             trusted keys (default /etc/flotilla/update-keys)
 *   UPDATE_STAGING_DIR          default /var/lib/flotilla/update
 *   UPDATE_IO_WEIGHT            IOWeight= of the write unit, 1..10000 (default 10)
 *   UPDATE_CPU_WEIGHT           CPUWeight=, 1..10000 (default 10)
 *   UPDATE_NICE                 Nice=, -20..19 (default 19)
 *   UPDATE_IO_WRITE_BANDWIDTH_MAX  IOWriteBandwidthMax= on UPDATE_DISK, bytes/s with K/M/G suffix
 *                               (1024-based, as systemd); default none
 *   UPDATE_WRITE_RATE_LIMIT     a userland limit of the write itself, bytes/s (K/M/G); for disks
 *                               where IOWriteBandwidthMax= cannot apply (image files on overlayfs)
 *   UPDATE_HEALTHY_SECONDS      mark the booted slot good after the agent has been ready and
 *                               healthy this long (default 60; 0 disables automatic mark-good)
 *   UPDATE_TRANSIENT_UNIT       yes (default): write inside a throttled transient unit; no: in process
 */
import { existsSync, readFileSync } from 'node:fs';
import { FlotillaError, isErrno } from '../lib/errors.js';
import { parseUpdateConf, UPDATE_CONF } from '../locksmith/config.js';
import { DEFAULT_KEYS_DIR } from './keys.js';
import { STAGING_DIR } from './staging.js';

export interface UpdateConfig {
  manifestUrl?: string;
  /** The Omaha endpoint when the transport is Omaha (then manifestUrl is unset). */
  omaha?: { url: string; appid?: string };
  group: string;
  board: string;
  currentVersion: string;
  disk?: string;
  partitions: { A?: string; B?: string };
  grubenv?: string;
  keysDir: string;
  stagingDir: string;
  ioWeight: number;
  cpuWeight: number;
  nice: number;
  ioWriteBandwidthMax?: number;
  writeRateLimit?: number;
  healthySeconds: number;
  transientUnit: boolean;
}

function osReleaseVersion(file = '/etc/os-release'): string | undefined {
  try {
    const m = /^VERSION_ID="?([^"\n]+)"?$/m.exec(readFileSync(file, 'utf8'));
    return m?.[1];
  } catch {
    return undefined;
  }
}

/** `50M`, `1G`, `1048576`: bytes (1024-based suffixes, as systemd parses them). */
export function parseBytes(v: string): number | undefined {
  const m = /^(\d+)([KMGT]?)$/i.exec(v.trim());
  if (!m) return undefined;
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2]!.toUpperCase()]!;
  const n = Number(m[1]) * mult;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** The flotilla.conf keys that feed the write throttle (AgentConfig fields). */
export interface AgentUpdateKeys {
  updateIoWeight?: number | undefined;
  updateCpuWeight?: number | undefined;
  updateNice?: number | undefined;
  updateIoWriteBandwidthMax?: string | undefined;
}

export function loadUpdateConfig(
  env: NodeJS.ProcessEnv = process.env,
  file = UPDATE_CONF,
  osRelease = '/etc/os-release',
  agent: AgentUpdateKeys = {},
): UpdateConfig {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (!isErrno(err, 'ENOENT'))
      throw new FlotillaError('E_CONFIG', `${file}: ${(err as Error).message}`, { file });
  }
  const s = parseUpdateConf(text, file);
  const fromAgent: [string, number | string | undefined, string][] = [
    ['UPDATE_IO_WEIGHT', agent.updateIoWeight, 'update_io_weight'],
    ['UPDATE_CPU_WEIGHT', agent.updateCpuWeight, 'update_cpu_weight'],
    ['UPDATE_NICE', agent.updateNice, 'update_nice'],
    ['UPDATE_IO_WRITE_BANDWIDTH_MAX', agent.updateIoWriteBandwidthMax, 'update_io_write_bandwidth_max'],
  ];
  for (const [k, v, name] of fromAgent)
    if (v !== undefined && !s.has(k)) s.set(k, { value: String(v), from: `flotilla.conf ${name}` });
  for (const [k, v] of Object.entries(env)) if (v !== undefined) s.set(k, { value: v, from: 'environment' });
  const get = (k: string) => s.get(k)?.value;
  const bad = (k: string, msg: string) =>
    new FlotillaError('E_CONFIG', `${s.get(k)?.from ?? file}: ${k}: ${msg}`, { key: k });
  const int = (k: string, def: number, min: number, max: number): number => {
    const v = get(k);
    if (v === undefined || v === '') return def;
    if (!/^-?\d+$/.test(v) || Number(v) < min || Number(v) > max)
      throw bad(k, `${JSON.stringify(v)} is not an integer in ${min}..${max}`);
    return Number(v);
  };
  const abs = (k: string): string | undefined => {
    const v = get(k);
    if (v === undefined || v === '') return undefined;
    if (!v.startsWith('/')) throw bad(k, `${JSON.stringify(v)} is not an absolute path`);
    return v;
  };
  const group = get('GROUP') || 'stable';
  const board = get('BOARD') || get('COREOS_RELEASE_BOARD') || 'amd64-usr';
  for (const [k, v] of [
    ['GROUP', group],
    ['BOARD', board],
  ] as const)
    if (!/^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$/.test(v))
      throw bad(k, `${JSON.stringify(v)} is not a plain name`);
  let manifestUrl: string | undefined;
  let omaha: UpdateConfig['omaha'];
  const server = get('SERVER');
  if (server) {
    let u: URL;
    try {
      u = new URL(server);
    } catch {
      throw bad('SERVER', `${JSON.stringify(server)} is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw bad('SERVER', 'must be an http or https URL');
    const transport = (
      get('UPDATE_TRANSPORT') || (/\/v1\/update\/?$/.test(u.pathname) ? 'omaha' : 'bundle')
    ).toLowerCase();
    if (transport !== 'omaha' && transport !== 'bundle')
      throw bad('UPDATE_TRANSPORT', `${JSON.stringify(transport)} is not bundle or omaha`);
    if (transport === 'omaha') {
      const appid = get('COREOS_RELEASE_APPID');
      if (appid !== undefined && appid !== '' && !/^\{?[0-9A-Fa-f-]{1,64}\}?$/.test(appid))
        throw bad('COREOS_RELEASE_APPID', `${JSON.stringify(appid)} is not an app id ({GUID})`);
      omaha = { url: u.href, ...(appid ? { appid } : {}) };
    } else
      manifestUrl = u.pathname.endsWith('.json')
        ? u.href
        : new URL(`${group}/${board}/manifest.json`, u.href.endsWith('/') ? u.href : `${u.href}/`).href;
  }
  let bw: number | undefined;
  const bwRaw = get('UPDATE_IO_WRITE_BANDWIDTH_MAX');
  if (bwRaw) {
    bw = parseBytes(bwRaw);
    if (bw === undefined)
      throw bad('UPDATE_IO_WRITE_BANDWIDTH_MAX', `${JSON.stringify(bwRaw)} is not bytes (e.g. 50M)`);
  }
  let rl: number | undefined;
  const rlRaw = get('UPDATE_WRITE_RATE_LIMIT');
  if (rlRaw) {
    rl = parseBytes(rlRaw);
    if (rl === undefined)
      throw bad('UPDATE_WRITE_RATE_LIMIT', `${JSON.stringify(rlRaw)} is not bytes (e.g. 20M)`);
  }
  const tu = (get('UPDATE_TRANSIENT_UNIT') ?? 'yes').toLowerCase();
  if (!['yes', 'no', 'true', 'false', '1', '0'].includes(tu))
    throw bad('UPDATE_TRANSIENT_UNIT', 'must be yes or no');
  const grubenv =
    abs('UPDATE_GRUBENV') ?? (existsSync('/boot/grub/grubenv') ? '/boot/grub/grubenv' : undefined);
  const disk = abs('UPDATE_DISK');
  const pa = abs('UPDATE_PARTITION_A');
  const pb = abs('UPDATE_PARTITION_B');
  return {
    ...(manifestUrl ? { manifestUrl } : {}),
    ...(omaha ? { omaha } : {}),
    group,
    board,
    currentVersion:
      get('CURRENT_VERSION') || get('COREOS_RELEASE_VERSION') || osReleaseVersion(osRelease) || '0.0.0',
    ...(disk ? { disk } : {}),
    partitions: { ...(pa ? { A: pa } : {}), ...(pb ? { B: pb } : {}) },
    ...(grubenv ? { grubenv } : {}),
    keysDir: abs('UPDATE_KEYS_DIR') ?? DEFAULT_KEYS_DIR,
    stagingDir: abs('UPDATE_STAGING_DIR') ?? STAGING_DIR,
    ioWeight: int('UPDATE_IO_WEIGHT', 10, 1, 10_000),
    cpuWeight: int('UPDATE_CPU_WEIGHT', 10, 1, 10_000),
    nice: int('UPDATE_NICE', 19, -20, 19),
    ...(bw ? { ioWriteBandwidthMax: bw } : {}),
    ...(rl ? { writeRateLimit: rl } : {}),
    healthySeconds: int('UPDATE_HEALTHY_SECONDS', 60, 0, 86_400),
    transientUnit: ['yes', 'true', '1'].includes(tu),
  };
}

/** UPDATE_DISK, or E_CONFIG saying it must be set. */
export function requireDisk(c: UpdateConfig): string {
  if (!c.disk)
    throw new FlotillaError(
      'E_CONFIG',
      `${UPDATE_CONF}: UPDATE_DISK is not set (the disk with the A/B slots)`,
      {
        key: 'UPDATE_DISK',
      },
    );
  return c.disk;
}
