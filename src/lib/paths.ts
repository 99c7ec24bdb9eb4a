/**
 * The host paths flotilla uses by default, in one place. Each is a default only: the agent's
 * config (data_dir, units_directory, docker_socket, …) and the CLI's flags override them, and tests
 * move "the host" into temp dirs through those settings.
 */
export const HOST_PATHS = {
  /** The agent's config file (fleet.conf's keys). */
  configFile: '/etc/flotilla/flotilla.conf',
  /** Reboot and update settings (CoreOS kept them in /etc/coreos/update.conf). */
  updateConf: '/etc/flotilla/update.conf',
  /** The agent's state: lease, embedded registry, image ledger. */
  dataDir: '/var/lib/flotilla',
  /** The embedded registry's data directory (under dataDir). */
  embeddedRegistryDir: '/var/lib/flotilla/registry',
  /** Where the agent installs the units it runs (a systemd runtime unit path). */
  unitsDir: '/run/flotilla/units',
  /** Container units' run specs and runner status files. */
  containersDir: '/run/flotilla/containers',
  /** The fleet v1 API socket, where fleetctl looks for it. */
  apiSocket: '/var/run/fleet.sock',
  /** The Docker engine's socket. */
  dockerSocket: '/var/run/docker.sock',
  /** systemd's machine ID, the machine's identity in the cluster. */
  machineIdFile: '/etc/machine-id',
  /** Marker: the proxy turned on route_localnet (and turns it off again). */
  proxyRouteLocalnetMarker: '/run/flotilla/proxy-route-localnet',
} as const;

/** The CLI's default API endpoint (fleetctl's `--endpoint` default). */
export const DEFAULT_API_ENDPOINT = `unix://${HOST_PATHS.apiSocket}`;
