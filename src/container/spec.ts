/**
 * The declarative `[Container]` section of a unit (after Podman Quadlet's `.container` files):
 * parsing and validation into a `ContainerSpec`. Pure.
 *
 *   [Container]
 *   Image=busybox:latest                    required; a valid reference (no shell characters)
 *   Name=web-%i                             container name (default flotilla-<unit name>)
 *   Exec=httpd -f -p 8080                   command (argv, split like systemd; never a shell)
 *   Environment=A=1 "B=two words"           repeatable
 *   EnvironmentFile=-/etc/web.env           repeatable, read on the machine at start ("-": optional)
 *   Volume=/srv/data:/data:ro               SRC:DST[:OPTS], SRC absolute or a named volume
 *   Network=host                            host | none | bridge | a network name
 *   Publish=127.0.0.1:8080:80/tcp           [[IP:]HOSTPORT:]PORT[/tcp|udp]; not with host/none
 *   Label=tier=web                          repeatable; `flotilla.*` is reserved
 *   User=1000:1000
 *   PullPolicy=missing                      always | missing (default) | never
 *   StopTimeout=10                          seconds (or 30s, 1min, 1m30s) before SIGKILL on stop
 *   HealthCmd=wget -q -O- http://127.0.0.1:8080/
 *   HealthInterval= HealthTimeout= HealthStartPeriod= HealthRetries=
 *   Service=web:8080                        NAME:PORT for discovery; repeatable
 *
 * Specifiers `%n %N %p %i %%` are expanded (with the unit's name) in Name, Exec, Environment,
 * Volume, Label and HealthCmd; any other `%x` is an error. Unknown keys, a repeated single-valued
 * key, and [Service] keys that would fight the generated service (ExecStart, ExecStop, Type,
 * KillMode, NotifyAccess) are errors. Every error is E_CONTAINER_SPEC naming the unit, the key and
 * the value.
 */
import { FlotillaError } from '../lib/errors.js';
import { type UnitFile, parseUnitName } from '../unit/index.js';
import { excerpt } from '../unit/text.js';
import { parseImageReference } from '../docker/reference.js';
import type { PortBinding } from '../docker/port.js';

export const CONTAINER_SECTION = 'Container';

export type PullPolicy = 'always' | 'missing' | 'never';

export interface VolumeSpec {
  source: string;
  target: string;
  options: string[];
}

export interface EnvironmentFileSpec {
  path: string;
  optional: boolean;
}

export interface HealthSpec {
  cmd: string[];
  intervalSec?: number;
  timeoutSec?: number;
  startPeriodSec?: number;
  retries?: number;
}

export interface ServicePort {
  name: string;
  port: number;
}

export interface ContainerSpec {
  image: string;
  name: string;
  /** Command argv; undefined: the image's default. */
  exec?: string[];
  /** In order; a later assignment of the same name wins. */
  environment: [string, string][];
  environmentFiles: EnvironmentFileSpec[];
  volumes: VolumeSpec[];
  network?: string;
  publish: PortBinding[];
  labels: Record<string, string>;
  user?: string;
  pullPolicy: PullPolicy;
  /** Seconds. */
  stopTimeout: number;
  health?: HealthSpec;
  services: ServicePort[];
}

export const DEFAULT_STOP_TIMEOUT = 10;
export const MAX_STOP_TIMEOUT = 3600;

const SINGLE = [
  'Image',
  'Name',
  'Exec',
  'Network',
  'User',
  'PullPolicy',
  'StopTimeout',
  'HealthCmd',
  'HealthInterval',
  'HealthTimeout',
  'HealthStartPeriod',
  'HealthRetries',
] as const;
const MULTI = ['Environment', 'EnvironmentFile', 'Volume', 'Publish', 'Label', 'Service'] as const;
export const CONTAINER_KEYS: readonly string[] = [...SINGLE, ...MULTI];

/** [Service] keys the generated service sets itself. */
export const RESERVED_SERVICE_KEYS = ['ExecStart', 'ExecStop', 'Type', 'KillMode', 'NotifyAccess'] as const;

const VOLUME_OPTIONS = new Set([
  'ro',
  'rw',
  'z',
  'Z',
  'shared',
  'slave',
  'private',
  'rshared',
  'rslave',
  'rprivate',
  'nocopy',
  'consistent',
  'cached',
  'delegated',
]);

/** Does this unit have a [Container] section? */
export function isContainerUnit(unit: UnitFile): boolean {
  return unit.sections().includes(CONTAINER_SECTION);
}

class SpecError extends FlotillaError {
  constructor(unit: string, key: string, value: string | undefined, why: string) {
    super(
      'E_CONTAINER_SPEC',
      value === undefined
        ? `${unit}: [${CONTAINER_SECTION}] ${key}: ${why}`
        : `${unit}: [${CONTAINER_SECTION}] ${key}=${excerpt(value, 80)}: ${why}`,
      { unit, key, ...(value !== undefined ? { value: excerpt(value, 200) } : {}) },
    );
  }
}

/**
 * Split a value into words like systemd does for ExecStart= (without its `$VAR` expansion and
 * without any shell): whitespace separates; "double" and 'single' quotes group; a backslash escapes
 * the next character (\n \t \\ \" \' \<space>). Throws on an unterminated quote or trailing
 * backslash.
 */
export function splitWords(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (ch === '\\') {
      if (i + 1 >= value.length) throw new Error('ends with a lone backslash');
      const n = value[++i]!;
      cur += n === 'n' ? '\n' : n === 't' ? '\t' : n;
      inWord = true;
      continue;
    }
    if (quote) {
      if (ch === quote) quote = undefined;
      else cur += ch;
      continue;
    }
    if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
      continue;
    }
    if (/\s/.test(ch)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    cur += ch;
    inWord = true;
  }
  if (quote) throw new Error(`unterminated ${quote === '"' ? 'double' : 'single'} quote`);
  if (inWord) out.push(cur);
  return out;
}

/** Expand %n %N %p %i %% (the unit's name parts); any other specifier is an error. */
export function expandContainerSpecifiers(value: string, unitName: string): string {
  const info = parseUnitName(unitName);
  return value.replace(/%(.?)/g, (_m, c: string) => {
    switch (c) {
      case 'n':
        return info.fullName;
      case 'N':
        return info.name;
      case 'p':
        return info.prefix;
      case 'i':
        return info.instance;
      case '%':
        return '%';
      default:
        throw new Error(
          c === ''
            ? 'ends with a lone "%" (write %% for a percent sign)'
            : `unsupported specifier %${c} (supported: %n %N %p %i, and %% for a percent sign)`,
        );
    }
  });
}

/** Systemd-ish time span → seconds: "10", "10s", "500ms", "1min", "1m30s", "2h". */
export function parseTimeSpan(value: string): number | undefined {
  const t = value.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const unit: Record<string, number> = {
    ms: 1e-3,
    msec: 1e-3,
    s: 1,
    sec: 1,
    second: 1,
    seconds: 1,
    m: 60,
    min: 60,
    minute: 60,
    minutes: 60,
    h: 3600,
    hr: 3600,
    hour: 3600,
    hours: 3600,
  };
  const re = /\s*(\d+(?:\.\d+)?)\s*([a-z]+)/y;
  let total = 0;
  let end = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    const f = unit[m[2]!];
    if (f === undefined) return undefined;
    total += Number(m[1]) * f;
    end = re.lastIndex;
  }
  return end === t.length && t.length > 0 ? total : undefined;
}

const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[a-zA-Z0-9]([a-zA-Z0-9._/-]*[a-zA-Z0-9])?$/;
const USER = /^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,63}(:[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,63})?$/;
const NETWORK = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** The default container name of a unit: `flotilla-` + its name without the suffix, made valid. */
export function defaultContainerName(unitName: string): string {
  const base = parseUnitName(unitName).name;
  return `flotilla-${base.replace(/[^a-zA-Z0-9_.-]/g, '_')}`;
}

function port(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** `[[IP:]HOSTPORT:]CONTAINERPORT[/PROTO]` → binding, or an error message. */
export function parsePublish(value: string): PortBinding | string {
  let rest = value.trim();
  let protocol: 'tcp' | 'udp' = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash !== -1) {
    const p = rest.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp') return `protocol ${JSON.stringify(p)} must be tcp or udp`;
    protocol = p;
    rest = rest.slice(0, slash);
  }
  let hostIp: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close === -1) return 'unterminated [IPv6] address';
    hostIp = rest.slice(1, close);
    if (!/^[0-9a-fA-F:]+$/.test(hostIp) || !hostIp.includes(':'))
      return `${JSON.stringify(hostIp)} is not an IPv6 address`;
    rest = rest.slice(close + 1);
    if (!rest.startsWith(':')) return 'expected ":" after the [IPv6] address';
    rest = rest.slice(1);
  }
  const parts = rest.split(':');
  if (hostIp === undefined && parts.length === 3) {
    hostIp = parts.shift()!;
    if (!isIPv4(hostIp)) return `${JSON.stringify(hostIp)} is not an IPv4 address`;
  }
  if (parts.length > 2 || parts.length === 0) return 'expected [[IP:]HOSTPORT:]CONTAINERPORT[/tcp|udp]';
  const cport = port(parts[parts.length - 1]!);
  if (cport === undefined)
    return `container port ${JSON.stringify(parts[parts.length - 1])} must be a number from 1 to 65535`;
  const out: PortBinding = { containerPort: cport, protocol };
  if (hostIp !== undefined) out.hostIp = hostIp;
  if (parts.length === 2) {
    if (parts[0] === '') {
      if (hostIp === undefined) return 'empty host port (write IP::PORT for a random host port)';
    } else {
      const hp = port(parts[0]!);
      if (hp === undefined) return `host port ${JSON.stringify(parts[0])} must be a number from 1 to 65535`;
      out.hostPort = hp;
    }
  } else if (hostIp !== undefined) {
    return 'expected IP:HOSTPORT:CONTAINERPORT';
  }
  return out;
}

function isIPv4(s: string): boolean {
  const p = s.split('.');
  return p.length === 4 && p.every((x) => /^\d{1,3}$/.test(x) && Number(x) <= 255);
}

/**
 * Read and validate the [Container] section of `unit` (named `unitName`). Throws E_CONTAINER_SPEC
 * on the first problem; E_UNIT_NAME for an invalid name.
 */
export function parseContainerSection(unitName: string, unit: UnitFile): ContainerSpec {
  const info = parseUnitName(unitName);
  const fail = (key: string, value: string | undefined, why: string): never => {
    throw new SpecError(unitName, key, value, why);
  };
  if (info.suffix !== 'service')
    fail('(section)', undefined, 'only .service units can have a [Container] section');

  const byKey = new Map<string, string[]>();
  for (const o of unit.options) {
    if (o.section === 'Service' && (RESERVED_SERVICE_KEYS as readonly string[]).includes(o.name)) {
      throw new FlotillaError(
        'E_CONTAINER_SPEC',
        `${unitName}: [Service] ${o.name}= cannot be used with a [Container] section: flotilla generates the service that runs the container`,
        { unit: unitName, key: `Service.${o.name}` },
      );
    }
    if (o.section !== CONTAINER_SECTION) continue;
    if (!CONTAINER_KEYS.includes(o.name))
      fail(o.name, o.value, `unknown key (valid: ${[...CONTAINER_KEYS].sort().join(', ')})`);
    let list = byKey.get(o.name);
    if (!list) byKey.set(o.name, (list = []));
    if (o.value === '' && (MULTI as readonly string[]).includes(o.name))
      list.length = 0; // systemd list reset
    else list.push(o.value);
  }
  const single = (key: (typeof SINGLE)[number]): string | undefined => {
    const v = byKey.get(key);
    if (!v || v.length === 0) return undefined;
    if (v.length > 1) fail(key, v[1], 'given more than once');
    return v[0];
  };
  const multi = (key: (typeof MULTI)[number]): string[] => byKey.get(key) ?? [];
  const expand = (key: string, value: string): string => {
    try {
      return expandContainerSpecifiers(value, unitName);
    } catch (err) {
      return fail(key, value, (err as Error).message);
    }
  };
  const words = (key: string, value: string): string[] => {
    try {
      return splitWords(expand(key, value));
    } catch (err) {
      return fail(key, value, (err as Error).message);
    }
  };
  const seconds = (key: string, value: string | undefined, max: number): number | undefined => {
    if (value === undefined) return undefined;
    const s = parseTimeSpan(value);
    if (s === undefined) return fail(key, value, 'not a time span (e.g. 10, 30s, 1min, 1m30s)');
    if (s > max) return fail(key, value, `must be at most ${max} seconds`);
    return s;
  };

  // Image
  const image = single('Image');
  if (image === undefined || image === '') return fail('Image', image, 'required: the image to run');
  const ref = parseImageReference(image);
  if ('why' in ref) fail('Image', image, ref.why);

  // Name
  const rawName = single('Name');
  let name = defaultContainerName(unitName);
  if (rawName !== undefined) {
    name = expand('Name', rawName);
    if (!CONTAINER_NAME.test(name) || name.length > 128)
      fail('Name', rawName, 'container names are 1-128 of [a-zA-Z0-9_.-], starting with a letter or digit');
  }

  const spec: ContainerSpec = {
    image,
    name,
    environment: [],
    environmentFiles: [],
    volumes: [],
    publish: [],
    labels: {},
    pullPolicy: 'missing',
    stopTimeout: DEFAULT_STOP_TIMEOUT,
    services: [],
  };

  const exec = single('Exec');
  if (exec !== undefined) {
    const argv = words('Exec', exec);
    if (argv.length === 0) fail('Exec', exec, 'no command');
    spec.exec = argv;
  }

  // Environment= values may be secrets: errors name the word's position and the variable, never
  // the value (they reach logs and the published reason of a unit).
  for (const v of multi('Environment')) {
    let ws: string[];
    try {
      ws = splitWords(expandContainerSpecifiers(v, unitName));
    } catch (err) {
      return fail('Environment', undefined, (err as Error).message);
    }
    ws.forEach((w, i) => {
      const eq = w.indexOf('=');
      if (eq <= 0)
        fail(
          'Environment',
          undefined,
          `word ${i + 1} is not NAME=VALUE (quote a value with spaces: "NAME=a b")`,
        );
      const k = w.slice(0, eq);
      if (!ENV_NAME.test(k))
        fail('Environment', undefined, `${JSON.stringify(k)} is not a valid variable name`);
      spec.environment.push([k, w.slice(eq + 1)]);
    });
  }

  for (const v of multi('EnvironmentFile')) {
    const optional = v.startsWith('-');
    const path = optional ? v.slice(1) : v;
    if (!path.startsWith('/') || /[\0\n]/.test(path)) fail('EnvironmentFile', v, 'must be an absolute path');
    spec.environmentFiles.push({ path, optional });
  }

  for (const v of multi('Volume')) {
    const parts = expand('Volume', v).split(':');
    if (parts.length < 2 || parts.length > 3) fail('Volume', v, 'expected SOURCE:TARGET[:OPTIONS]');
    const [source, target, opts] = parts as [string, string, string | undefined];
    if (!(source.startsWith('/') || VOLUME_NAME.test(source)))
      fail('Volume', v, `source ${JSON.stringify(source)} must be an absolute path or a volume name`);
    if (!target.startsWith('/'))
      fail('Volume', v, `target ${JSON.stringify(target)} must be an absolute path`);
    if ([source, target].some((p) => p.split('/').includes('..')))
      fail('Volume', v, 'paths must not contain ".."');
    const options = opts === undefined || opts === '' ? [] : opts.split(',');
    for (const o of options)
      if (!VOLUME_OPTIONS.has(o)) fail('Volume', v, `unknown volume option ${JSON.stringify(o)}`);
    spec.volumes.push({ source, target, options });
  }

  const network = single('Network');
  if (network !== undefined) {
    if (!NETWORK.test(network)) fail('Network', network, 'must be host, none, bridge or a network name');
    spec.network = network;
  }

  for (const v of multi('Publish')) {
    const b = parsePublish(v);
    if (typeof b === 'string') fail('Publish', v, b);
    spec.publish.push(b as PortBinding);
  }
  if (spec.publish.length > 0 && (spec.network === 'host' || spec.network === 'none')) {
    fail(
      'Publish',
      multi('Publish')[0],
      spec.network === 'host'
        ? 'has no effect with Network=host: the container uses the machine’s ports directly; remove Publish='
        : 'cannot publish ports with Network=none',
    );
  }

  for (const v of multi('Label')) {
    for (const w of words('Label', v)) {
      const eq = w.indexOf('=');
      const k = eq === -1 ? w : w.slice(0, eq);
      if (!LABEL_KEY.test(k)) fail('Label', v, `${JSON.stringify(k)} is not a valid label key`);
      if (k === 'flotilla' || k.startsWith('flotilla.'))
        fail('Label', v, 'label keys starting with "flotilla." are reserved for flotilla');
      spec.labels[k] = eq === -1 ? '' : w.slice(eq + 1);
    }
  }

  const user = single('User');
  if (user !== undefined) {
    if (!USER.test(user)) fail('User', user, 'expected USER or USER:GROUP (names or numbers)');
    spec.user = user;
  }

  const pull = single('PullPolicy');
  if (pull !== undefined) {
    if (pull !== 'always' && pull !== 'missing' && pull !== 'never')
      fail('PullPolicy', pull, 'must be always, missing or never');
    spec.pullPolicy = pull as PullPolicy;
  }

  const stop = seconds('StopTimeout', single('StopTimeout'), MAX_STOP_TIMEOUT);
  if (stop !== undefined) spec.stopTimeout = Math.ceil(stop);

  const hc = single('HealthCmd');
  const healthOpts = ['HealthInterval', 'HealthTimeout', 'HealthStartPeriod', 'HealthRetries'] as const;
  if (hc !== undefined) {
    const cmd = words('HealthCmd', hc);
    if (cmd.length === 0) fail('HealthCmd', hc, 'no command');
    const h: HealthSpec = { cmd };
    const iv = seconds('HealthInterval', single('HealthInterval'), 86400);
    const to = seconds('HealthTimeout', single('HealthTimeout'), 86400);
    const sp = seconds('HealthStartPeriod', single('HealthStartPeriod'), 86400);
    for (const [k, s] of [
      ['HealthInterval', iv],
      ['HealthTimeout', to],
    ] as const) {
      if (s !== undefined && s < 0.001) fail(k, single(k), 'must be at least 1ms');
    }
    if (iv !== undefined) h.intervalSec = iv;
    if (to !== undefined) h.timeoutSec = to;
    if (sp !== undefined) h.startPeriodSec = sp;
    const r = single('HealthRetries');
    if (r !== undefined) {
      if (!/^\d+$/.test(r) || Number(r) < 1 || Number(r) > 1000)
        fail('HealthRetries', r, 'must be a number from 1 to 1000');
      h.retries = Number(r);
    }
    spec.health = h;
  } else {
    for (const k of healthOpts) if (single(k) !== undefined) fail(k, single(k), 'needs HealthCmd=');
  }

  const seen = new Set<string>();
  for (const v of multi('Service')) {
    const colon = v.lastIndexOf(':');
    const svc = colon === -1 ? '' : v.slice(0, colon);
    const p = colon === -1 ? undefined : port(v.slice(colon + 1));
    if (colon === -1 || !SERVICE_NAME.test(svc))
      fail('Service', v, 'expected NAME:PORT, NAME of lowercase letters, digits and "-" (at most 63)');
    if (p === undefined) fail('Service', v, 'PORT must be a number from 1 to 65535');
    if (seen.has(svc)) fail('Service', v, `service ${svc} is given more than once`);
    seen.add(svc);
    spec.services.push({ name: svc, port: p! });
  }
  return spec;
}

/** The `Service=` entries of a container unit (for discovery); [] for other units. Throws like parseContainerSection. */
export function containerServices(unitName: string, unit: UnitFile): ServicePort[] {
  return isContainerUnit(unit) ? parseContainerSection(unitName, unit).services : [];
}
