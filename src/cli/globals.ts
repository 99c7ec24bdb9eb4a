/**
 * fleetctl's global flags. Every global flag can also come from the environment as
 * `FLEETCTL_<FLAG>` or `FLOTILLA_<FLAG>` (dashes become underscores, upper case); an explicit flag
 * wins (fleetctl's getFlagsFromEnv). Boolean flags take Go's spellings (`--debug=false`).
 */
import { UsageError, type FlagSpec } from './command.js';
import { DEFAULT_API_ENDPOINT } from '../lib/paths.js';

export const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  endpoint: {
    type: 'string',
    default: DEFAULT_API_ENDPOINT,
    value: 'URL',
    help: 'Location of the fleet API (unix://, http://, https://)',
  },
  'request-timeout': {
    type: 'string',
    default: '3.0',
    value: 'SECONDS',
    help: 'Amount of time in seconds to allow a single request before considering it failed',
  },
  'ca-file': {
    type: 'string',
    value: 'PATH',
    help: 'Location of TLS CA file used to secure communication with the fleet API or etcd',
  },
  'cert-file': {
    type: 'string',
    value: 'PATH',
    help: 'Location of TLS cert file used to secure communication with the fleet API or etcd',
  },
  'key-file': {
    type: 'string',
    value: 'PATH',
    help: 'Location of TLS key file used to secure communication with the fleet API or etcd',
  },
  'etcd-key-prefix': {
    type: 'string',
    default: '/flotilla/',
    value: 'PREFIX',
    help: 'Keyspace for fleet data in etcd',
  },
  driver: {
    type: 'string',
    default: 'API',
    value: 'NAME',
    help: 'Adapter used to query fleet: API (etcd is not supported)',
  },
  tunnel: {
    type: 'string',
    value: 'HOST',
    help: 'Establish an SSH tunnel through the provided address for communication with fleet and etcd',
  },
  'ssh-username': {
    type: 'string',
    default: 'core',
    value: 'USER',
    help: 'Username to use when connecting to CoreOS instance',
  },
  'ssh-timeout': {
    type: 'string',
    default: '10.0',
    value: 'SECONDS',
    help: 'Amount of time in seconds to allow for SSH connection initialization before failing',
  },
  'strict-host-key-checking': {
    type: 'boolean',
    default: true,
    help: 'Verify host keys presented by remote machines before initiating SSH connections (=false to skip)',
  },
  'known-hosts-file': {
    type: 'string',
    value: 'PATH',
    help: "File used to store remote machine fingerprints (default: ssh's own, ~/.ssh/known_hosts)",
  },
  debug: { type: 'boolean', default: false, help: 'Print out more debug information to stderr' },
  version: { type: 'boolean', short: 'v', default: false, help: 'Print the version and exit' },
  help: { type: 'boolean', short: 'h', default: false, help: 'Print usage information and exit' },
  // fleetctl's deprecated spellings, still accepted.
  'etcd-keyfile': { type: 'string', hidden: true, alias: 'key-file', help: 'Deprecated: --key-file' },
  'etcd-certfile': { type: 'string', hidden: true, alias: 'cert-file', help: 'Deprecated: --cert-file' },
  'etcd-cafile': { type: 'string', hidden: true, alias: 'ca-file', help: 'Deprecated: --ca-file' },
  'experimental-api': { type: 'boolean', hidden: true, default: true, help: 'Deprecated, ignored' },
};

/** Go's strconv.ParseBool, which fleetctl's boolean flags and variables use. */
export function parseGoBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

/**
 * Values for global flags from FLEETCTL_* / FLOTILLA_* (FLOTILLA_ wins over FLEETCTL_). Like
 * fleetctl, an empty variable counts as unset. A boolean variable that is not a Go boolean is an
 * error naming the variable.
 */
export function globalsFromEnv(env: NodeJS.ProcessEnv): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (const [name, spec] of Object.entries(GLOBAL_FLAGS)) {
    if (name === 'help' || name === 'version') continue;
    const suffix = name.toUpperCase().replace(/-/g, '_');
    for (const prefix of ['FLOTILLA', 'FLEETCTL']) {
      const key = `${prefix}_${suffix}`;
      const v = env[key];
      if (v === undefined || v === '') continue;
      if (spec.type === 'boolean') {
        const b = parseGoBool(v);
        if (b === undefined) {
          throw new UsageError(`${key}=${JSON.stringify(v)}: not a boolean (true or false)`);
        }
        out[spec.alias ?? name] = b;
      } else {
        out[spec.alias ?? name] = v;
      }
      break;
    }
  }
  return out;
}

/** A number of seconds from a flag (fleetctl's float64 flags), or a usage error naming it. */
export function secondsFlag(name: string, raw: string | boolean | undefined, dflt: number): number {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new UsageError(
      `invalid argument ${JSON.stringify(raw)} for "--${name}" flag: a positive number of seconds`,
    );
  }
  return n;
}
