/**
 * fleetctl's global flags. Every global flag can also come from the environment as
 * `FLEETCTL_<FLAG>` or `FLOTILLA_<FLAG>` (dashes become underscores, upper case); an explicit flag
 * wins (fleetctl's getFlagsFromEnv).
 */
import type { FlagSpec } from './command.js';

export const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  endpoint: {
    type: 'string',
    default: 'unix:///var/run/fleet.sock',
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
    type: 'string',
    default: 'true',
    value: 'BOOL',
    help: 'Verify host keys presented by remote machines before initiating SSH connections',
  },
  'known-hosts-file': {
    type: 'string',
    default: '~/.fleetctl/known_hosts',
    value: 'PATH',
    help: 'File used to store remote machine fingerprints',
  },
  debug: { type: 'boolean', default: false, help: 'Print out more debug information to stderr' },
  version: { type: 'boolean', short: 'v', default: false, help: 'Print the version and exit' },
  help: { type: 'boolean', short: 'h', default: false, help: 'Print usage information and exit' },
};

/** Values for global flags from FLEETCTL_* / FLOTILLA_* (FLOTILLA_ wins over FLEETCTL_). */
export function globalsFromEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(GLOBAL_FLAGS)) {
    if (name === 'help' || name === 'version') continue;
    const suffix = name.toUpperCase().replace(/-/g, '_');
    const v = env[`FLOTILLA_${suffix}`] ?? env[`FLEETCTL_${suffix}`];
    if (v !== undefined) out[name] = v;
  }
  return out;
}
