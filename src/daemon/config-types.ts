/**
 * The agent's configuration as loaded (config.ts) and checked (config-check.ts): the one shape both
 * share, apart from either so that neither imports the other for it.
 */
export interface AgentConfig {
  /** Empty: use the embedded registry (single machine). */
  etcdServers: string[];
  etcdKeyPrefix: string;
  etcdCafile?: string;
  etcdCertfile?: string;
  etcdKeyfile?: string;
  /** etcd username/password auth (or the URL form `http://user:pass@host:2379`). */
  etcdUsername?: string;
  etcdPassword?: string;
  /** Seconds. */
  etcdRequestTimeout: number;
  publicIp?: string;
  metadata: Record<string, string>;
  /** Seconds: TTL of the machine's presence lease and of its published unit states. */
  agentTtl: number;
  /** Seconds: the engine's and the agent's safety-net resync interval (they are event-driven). */
  engineReconcileInterval: number;
  disableEngine: boolean;
  verbosity: number;
  /** Embedded registry and agent state. */
  dataDir: string;
  /** Where unit files are written before they are linked into systemd. */
  unitsDirectory: string;
  /** The API's unix socket (mode 0600). */
  socketPath: string;
  /** Optional TCP listener `host:port` for the API; requires the TLS files below. */
  apiListen?: string;
  apiCafile?: string;
  apiCertfile?: string;
  apiKeyfile?: string;
  /** D-Bus system bus address; default from DBUS_SYSTEM_BUS_ADDRESS or the standard socket. */
  dbusAddress?: string;
  /** Docker socket. */
  dockerSocket: string;
  /** Run specs and status files of container units (runtime, like the units directory). */
  containersDirectory: string;
  machineIdFile: string;
  /** TCP port of the liveness responder on public_ip (0: no responder, this machine is never probed). */
  livenessPort: number;
  /** Seconds of silence after which a probed machine's presence is revoked; default 2/3 of agent_ttl. */
  livenessTimeout?: number;
  /** Optional read-only plain-HTTP listener for service discovery (loopback `host:port`). */
  servicesListen?: string;
  /** Service proxy listeners run by the agent: `NAME=HOST:PORT[,…]`. */
  proxyServices?: string;
  /** Seconds: how long connections to a removed endpoint may keep running. */
  proxyDrainTimeout: number;
  /** Client connections each proxy listener holds at once; one more is reset at accept. */
  proxyMaxConnections: number;
  /** Seconds: a proxied connection with no byte moving either way is closed after this. */
  proxyIdleTimeout: number;
  /** The proxy's data path for this machine's own connections: auto, kernel (nftables) or userspace. */
  proxyMode: string;
  /** Web dashboard listener `host:port` (off when unset); non-loopback requires the TLS files. */
  dashboardListen?: string;
  dashboardCertfile?: string;
  dashboardKeyfile?: string;
  /** CA for dashboard client certificates (mutual TLS instead of a login token). */
  dashboardCafile?: string;
  /** The dashboard's terminal (a shell over a WebSocket, operator only); off by default. */
  dashboardTerminal: boolean;
  /** OS update write throttle (src/update/config.ts validates the ranges; update.conf wins). */
  updateIoWeight?: number;
  updateCpuWeight?: number;
  updateNice?: number;
  updateIoWriteBandwidthMax?: string;
}
