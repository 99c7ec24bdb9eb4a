/**
 * The agent's configuration, from four layers (later wins):
 *   built-in defaults < config file (default /etc/flotilla/flotilla.conf) < environment < flags.
 *
 * fleet's key names work unchanged, so an existing fleet.conf can be reused: the file is INI with
 * global keys only (`key=value`, values optionally double-quoted, `#`/`;` comments). The environment
 * uses `FLOTILLA_<KEY>` (and fleet's `FLEET_<KEY>`, which FLOTILLA_ overrides). Flags are the keys in
 * dashed form: `--etcd-servers=http://10.0.0.1:2379,...`, `--agent-ttl=3s`.
 *
 * A missing default file is fine; a missing file named with --config, an unknown key, or a bad value
 * is an E_CONFIG error naming the key (and the file and line). Nothing here has side effects.
 */
import { readFileSync } from 'node:fs';
import { FlotillaError, isErrno } from '../lib/errors.js';
import { HOST_PATHS } from '../lib/paths.js';
import { redactUrl } from '../lib/redact.js';
import {
  checkDuration,
  checkInt,
  checkListen,
  checkPublicIp,
  normalizeKeyPrefix,
  validateConfig,
} from './config-check.js';
import type { AgentConfig } from './config-types.js';

export type { AgentConfig } from './config-types.js';

export const DEFAULT_CONFIG_FILE: string = HOST_PATHS.configFile;

export const DEFAULTS: AgentConfig = {
  etcdServers: [],
  etcdKeyPrefix: '/flotilla/',
  etcdRequestTimeout: 3,
  metadata: {},
  agentTtl: 30,
  engineReconcileInterval: 2,
  disableEngine: false,
  verbosity: 0,
  dataDir: HOST_PATHS.dataDir,
  unitsDirectory: HOST_PATHS.unitsDir,
  socketPath: HOST_PATHS.apiSocket,
  dockerSocket: HOST_PATHS.dockerSocket,
  containersDirectory: HOST_PATHS.containersDir,
  machineIdFile: HOST_PATHS.machineIdFile,
  livenessPort: 54730,
  proxyDrainTimeout: 30,
  proxyMaxConnections: 4096,
  proxyIdleTimeout: 3600,
  proxyMode: 'auto',
  dashboardTerminal: false,
};

type Kind =
  'list' | 'string' | 'duration' | 'bool' | 'int' | 'metadata' | 'path' | 'listen' | 'ip' | 'prefix';
interface KeySpec {
  field: keyof AgentConfig;
  kind: Kind;
}

/** Every accepted key, fleet's names first. */
export const KEYS: Record<string, KeySpec> = {
  etcd_servers: { field: 'etcdServers', kind: 'list' },
  etcd_key_prefix: { field: 'etcdKeyPrefix', kind: 'prefix' },
  etcd_cafile: { field: 'etcdCafile', kind: 'path' },
  etcd_certfile: { field: 'etcdCertfile', kind: 'path' },
  etcd_keyfile: { field: 'etcdKeyfile', kind: 'path' },
  etcd_username: { field: 'etcdUsername', kind: 'string' },
  etcd_password: { field: 'etcdPassword', kind: 'string' },
  etcd_request_timeout: { field: 'etcdRequestTimeout', kind: 'duration' },
  public_ip: { field: 'publicIp', kind: 'ip' },
  metadata: { field: 'metadata', kind: 'metadata' },
  agent_ttl: { field: 'agentTtl', kind: 'duration' },
  engine_reconcile_interval: { field: 'engineReconcileInterval', kind: 'duration' },
  disable_engine: { field: 'disableEngine', kind: 'bool' },
  verbosity: { field: 'verbosity', kind: 'int' },
  units_directory: { field: 'unitsDirectory', kind: 'path' },
  data_dir: { field: 'dataDir', kind: 'path' },
  socket: { field: 'socketPath', kind: 'path' },
  api_listen: { field: 'apiListen', kind: 'listen' },
  api_cafile: { field: 'apiCafile', kind: 'path' },
  api_certfile: { field: 'apiCertfile', kind: 'path' },
  api_keyfile: { field: 'apiKeyfile', kind: 'path' },
  dbus_address: { field: 'dbusAddress', kind: 'string' },
  docker_socket: { field: 'dockerSocket', kind: 'path' },
  containers_directory: { field: 'containersDirectory', kind: 'path' },
  machine_id_file: { field: 'machineIdFile', kind: 'path' },
  liveness_port: { field: 'livenessPort', kind: 'int' },
  liveness_timeout: { field: 'livenessTimeout', kind: 'duration' },
  services_listen: { field: 'servicesListen', kind: 'listen' },
  proxy_services: { field: 'proxyServices', kind: 'string' },
  proxy_drain_timeout: { field: 'proxyDrainTimeout', kind: 'duration' },
  proxy_max_connections: { field: 'proxyMaxConnections', kind: 'int' },
  proxy_idle_timeout: { field: 'proxyIdleTimeout', kind: 'duration' },
  proxy_mode: { field: 'proxyMode', kind: 'string' },
  dashboard_listen: { field: 'dashboardListen', kind: 'listen' },
  dashboard_certfile: { field: 'dashboardCertfile', kind: 'path' },
  dashboard_keyfile: { field: 'dashboardKeyfile', kind: 'path' },
  dashboard_cafile: { field: 'dashboardCafile', kind: 'path' },
  dashboard_terminal: { field: 'dashboardTerminal', kind: 'bool' },
  update_io_weight: { field: 'updateIoWeight', kind: 'int' },
  update_cpu_weight: { field: 'updateCpuWeight', kind: 'int' },
  update_nice: { field: 'updateNice', kind: 'int' },
  update_io_write_bandwidth_max: { field: 'updateIoWriteBandwidthMax', kind: 'string' },
};

/** fleet keys we accept and ignore, with the reason logged once. */
export const IGNORED_KEYS: Record<string, string> = {
  systemd_user: 'flotilla drives the system instance only',
  token_limit: 'the API page size is fixed at 100',
  disable_watches: 'flotilla is event-driven; watches cannot be disabled',
  enable_grpc: 'not needed: agents read the registry directly',
  verify_units: 'deprecated in fleet and ignored',
  authorized_keys_file: 'deprecated in fleet and ignored',
};

export interface Source {
  /** Where the value came from, for error messages: `/etc/flotilla/flotilla.conf:3`, `FLOTILLA_AGENT_TTL`, `--agent-ttl`. */
  origin: string;
  key: string;
  value: string;
}

function bad(src: Source, why: string): FlotillaError {
  return new FlotillaError('E_CONFIG', `${src.origin}: ${src.key}: ${why}`, {
    field: src.key,
    origin: src.origin,
  });
}

/** Go duration ("30s", "1m30s", "500ms", "2h") or plain seconds ("30", "2.5") → seconds. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  const unit: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0;
  let matched = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    total += Number(m[1]) * unit[m[2]!]!;
    matched = re.lastIndex;
  }
  return matched === t.length && t.length > 0 ? total : undefined;
}

function convert(src: Source): unknown {
  const spec = KEYS[src.key]!;
  const v = src.value.trim();
  switch (spec.kind) {
    case 'list': {
      // fleet.conf accepted `["http://a:2379","http://b:2379"]`; env and flags use commas.
      const inner = v.startsWith('[') && v.endsWith(']') ? v.slice(1, -1) : v;
      const items = inner
        .split(',')
        .map((s) => s.trim().replace(/^"(.*)"$/, '$1'))
        .filter(Boolean);
      for (const it of items) {
        let u: URL;
        try {
          u = new URL(it);
        } catch {
          throw bad(src, `${JSON.stringify(redactUrl(it))} is not a URL (expected http://host:port)`);
        }
        if (u.protocol !== 'http:' && u.protocol !== 'https:')
          throw bad(src, `${JSON.stringify(redactUrl(it))}: scheme must be http or https`);
      }
      return items;
    }
    case 'string':
    case 'path':
    case 'listen':
    case 'ip':
    case 'prefix': {
      if (v.includes('\0')) throw bad(src, 'contains a NUL byte');
      if (spec.kind === 'path' && v !== '' && !v.startsWith('/'))
        throw bad(src, `${JSON.stringify(v)} must be an absolute path`);
      // An empty listener is "off" (as unset).
      const why =
        spec.kind === 'listen' && v !== ''
          ? checkListen(v)
          : spec.kind === 'ip'
            ? checkPublicIp(v)
            : undefined;
      if (why !== undefined) throw bad(src, why);
      if (spec.kind === 'prefix') {
        const p = normalizeKeyPrefix(v);
        if (typeof p !== 'string') throw bad(src, p.why);
        return p;
      }
      if (spec.kind === 'ip' && v === '') return undefined;
      return v;
    }
    case 'duration': {
      const s = parseDuration(v);
      if (s === undefined || s <= 0)
        throw bad(src, `${JSON.stringify(v)} is not a positive duration (e.g. 30s, 2.5, 1m)`);
      const why = checkDuration(src.key, s);
      if (why !== undefined) throw bad(src, `${JSON.stringify(v)} ${why}`);
      return s;
    }
    case 'bool': {
      const l = v.toLowerCase();
      if (['true', '1', 'yes', 'on', 't'].includes(l)) return true;
      if (['false', '0', 'no', 'off', 'f', ''].includes(l)) return false;
      throw bad(src, `${JSON.stringify(v)} is not a boolean`);
    }
    case 'int': {
      if (!/^-?\d+$/.test(v)) throw bad(src, `${JSON.stringify(v)} is not an integer`);
      const why = checkInt(src.key, Number(v));
      if (why !== undefined) throw bad(src, why);
      return Number(v);
    }
    case 'metadata':
      return parseMetadata(v, src);
  }
}

/** fleet's metadata form: `k=v,k2=v2`, optionally quoted, spaces trimmed, the last duplicate wins. */
export function parseMetadata(text: string, src?: Source): Record<string, string> {
  const out: Record<string, string> = {};
  const t = text.trim().replace(/^"(.*)"$/, '$1');
  if (t === '') return out;
  for (const pair of t.split(',')) {
    const i = pair.indexOf('=');
    const k = i < 0 ? '' : pair.slice(0, i).trim();
    const val = i < 0 ? '' : pair.slice(i + 1).trim();
    if (!k || !/^[A-Za-z0-9_.-]+$/.test(k) || val === '') {
      const why = `${JSON.stringify(pair.trim())} is not key=value (keys: letters, digits, _ . -)`;
      if (src) throw bad(src, why);
      throw new FlotillaError('E_CONFIG', `metadata: ${why}`, { field: 'metadata' });
    }
    out[k] = val;
  }
  return out;
}

/** Parse an INI file of global keys into sources. */
export function parseConfigFile(text: string, path: string): Source[] {
  const out: Source[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    const origin = `${path}:${i + 1}`;
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    if (line.startsWith('[')) {
      throw new FlotillaError(
        'E_CONFIG',
        `${origin}: sections are not supported; write global keys (key=value)`,
        {
          origin,
        },
      );
    }
    const eq = line.indexOf('=');
    if (eq <= 0)
      throw new FlotillaError('E_CONFIG', `${origin}: expected key=value, got ${JSON.stringify(line)}`, {
        origin,
      });
    const key = line.slice(0, eq).trim().replace(/-/g, '_');
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out.push({ origin, key, value });
  });
  return out;
}

export interface LoadOptions {
  /** `--config PATH`: must exist. Default: DEFAULT_CONFIG_FILE if it exists. */
  configFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Dashed flag name (without `--`) → value. */
  flags?: Record<string, string>;
  readFile?: (path: string) => string;
}

export interface LoadedConfig {
  config: AgentConfig;
  /** Which file was read, if any. */
  file?: string;
  /** Keys accepted and ignored, with the reason (log them). */
  ignored: string[];
}

export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const read = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const sources: Source[] = [];
  let file: string | undefined;
  const path = opts.configFile ?? DEFAULT_CONFIG_FILE;
  try {
    sources.push(...parseConfigFile(read(path), path));
    file = path;
  } catch (err) {
    if (err instanceof FlotillaError) throw err;
    if (!(isErrno(err, 'ENOENT') && opts.configFile === undefined)) {
      throw new FlotillaError('E_CONFIG', `config file ${path}: ${(err as Error).message}`, {
        field: 'config',
      });
    }
  }
  for (const key of [...Object.keys(KEYS), ...Object.keys(IGNORED_KEYS)]) {
    const up = key.toUpperCase();
    for (const prefix of ['FLEET_', 'FLOTILLA_']) {
      const v = env[`${prefix}${up}`];
      if (v !== undefined) sources.push({ origin: `${prefix}${up}`, key, value: v });
    }
  }
  for (const [flag, value] of Object.entries(opts.flags ?? {})) {
    sources.push({ origin: `--${flag}`, key: flag.replace(/-/g, '_'), value });
  }
  const config = { ...DEFAULTS, metadata: { ...DEFAULTS.metadata } } as Record<string, unknown>;
  const ignored: string[] = [];
  /** key → where its winning value came from. */
  const origins = new Map<string, string>();
  for (const src of sources) {
    if (IGNORED_KEYS[src.key] !== undefined) {
      ignored.push(`${src.origin}: ${src.key} ignored: ${IGNORED_KEYS[src.key]}`);
      continue;
    }
    const spec = KEYS[src.key];
    if (!spec)
      throw new FlotillaError('E_CONFIG', `${src.origin}: unknown key ${JSON.stringify(src.key)}`, {
        field: src.key,
      });
    config[spec.field] = convert(src);
    origins.set(src.key, src.origin);
  }
  const c = config as unknown as AgentConfig;
  validateConfig(c, (key) => origins.get(key));
  return file === undefined ? { config: c, ignored } : { config: c, file, ignored };
}
