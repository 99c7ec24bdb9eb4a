/**
 * The cloud-config schema as coreos-cloudinit declares it (host-tools.md §1.5): every key, its Go
 * kind (what the validator's `want …` names), the environment name a section maps it to, its
 * `valid` pattern and its `deprecated` note. Field order is declaration order, which is also the
 * order environment lines are written in (§1.5: "in struct declaration order").
 *
 * Keys are the normalised (`-` → `_`) names; the YAML may use either spelling.
 */

export type Kind = 'string' | 'int' | 'float64' | 'bool';

export interface Field {
  type: Kind | Schema | { slice: Kind | Schema };
  env?: string;
  valid?: RegExp;
  deprecated?: string;
}

export type Schema = { readonly [key: string]: Field };

export function isSchema(t: Field['type']): t is Schema {
  return typeof t === 'object' && !('slice' in t);
}

/** The validator's want-kind, as Go's reflect prints it (`string`, `[]string`, `struct`, `[]struct`). */
export function humanType(t: Field['type']): string {
  if (typeof t === 'string') return t;
  if ('slice' in t && (typeof t.slice === 'string' || !('slice' in t.slice)))
    return `[]${humanType(t.slice as Kind | Schema)}`;
  return 'struct';
}

const s = (env?: string, extra: Partial<Field> = {}): Field => ({
  type: 'string',
  ...(env ? { env } : {}),
  ...extra,
});
const i = (env: string, extra: Partial<Field> = {}): Field => ({ type: 'int', env, ...extra });
const f = (env: string, extra: Partial<Field> = {}): Field => ({ type: 'float64', env, ...extra });
const b = (env?: string, extra: Partial<Field> = {}): Field => ({
  type: 'bool',
  ...(env ? { env } : {}),
  ...extra,
});

const ETCD2_ONLY = { deprecated: 'etcd2 options no longer work for etcd' };

/** coreos.etcd (etcd v0.4). */
export const ETCD: Schema = {
  addr: s('ETCD_ADDR'),
  advertise_client_urls: s('ETCD_ADVERTISE_CLIENT_URLS', ETCD2_ONLY),
  bind_addr: s('ETCD_BIND_ADDR'),
  ca_file: s('ETCD_CA_FILE'),
  cert_file: s('ETCD_CERT_FILE'),
  cluster_active_size: i('ETCD_CLUSTER_ACTIVE_SIZE'),
  cluster_remove_delay: f('ETCD_CLUSTER_REMOVE_DELAY'),
  cluster_sync_interval: f('ETCD_CLUSTER_SYNC_INTERVAL'),
  cors: s('ETCD_CORS'),
  data_dir: s('ETCD_DATA_DIR'),
  discovery: s('ETCD_DISCOVERY'),
  discovery_fallback: s('ETCD_DISCOVERY_FALLBACK', ETCD2_ONLY),
  discovery_srv: s('ETCD_DISCOVERY_SRV', ETCD2_ONLY),
  discovery_proxy: s('ETCD_DISCOVERY_PROXY', ETCD2_ONLY),
  election_timeout: i('ETCD_ELECTION_TIMEOUT', ETCD2_ONLY),
  force_new_cluster: b('ETCD_FORCE_NEW_CLUSTER', ETCD2_ONLY),
  graphite_host: s('ETCD_GRAPHITE_HOST'),
  heartbeat_interval: i('ETCD_HEARTBEAT_INTERVAL', ETCD2_ONLY),
  http_read_timeout: f('ETCD_HTTP_READ_TIMEOUT'),
  http_write_timeout: f('ETCD_HTTP_WRITE_TIMEOUT'),
  initial_advertise_peer_urls: s('ETCD_INITIAL_ADVERTISE_PEER_URLS', ETCD2_ONLY),
  initial_cluster: s('ETCD_INITIAL_CLUSTER', ETCD2_ONLY),
  initial_cluster_state: s('ETCD_INITIAL_CLUSTER_STATE', ETCD2_ONLY),
  initial_cluster_token: s('ETCD_INITIAL_CLUSTER_TOKEN', ETCD2_ONLY),
  key_file: s('ETCD_KEY_FILE'),
  listen_client_urls: s('ETCD_LISTEN_CLIENT_URLS', ETCD2_ONLY),
  listen_peer_urls: s('ETCD_LISTEN_PEER_URLS', ETCD2_ONLY),
  max_result_buffer: i('ETCD_MAX_RESULT_BUFFER'),
  max_retry_attempts: i('ETCD_MAX_RETRY_ATTEMPTS'),
  max_snapshots: i('ETCD_MAX_SNAPSHOTS', ETCD2_ONLY),
  max_wals: i('ETCD_MAX_WALS', ETCD2_ONLY),
  name: s('ETCD_NAME'),
  peer_addr: s('ETCD_PEER_ADDR'),
  peer_bind_addr: s('ETCD_PEER_BIND_ADDR'),
  peer_ca_file: s('ETCD_PEER_CA_FILE'),
  peer_cert_file: s('ETCD_PEER_CERT_FILE'),
  peer_election_timeout: i('ETCD_PEER_ELECTION_TIMEOUT'),
  peer_heartbeat_interval: i('ETCD_PEER_HEARTBEAT_INTERVAL'),
  peer_key_file: s('ETCD_PEER_KEY_FILE'),
  peers: s('ETCD_PEERS'),
  peers_file: s('ETCD_PEERS_FILE'),
  proxy: s('ETCD_PROXY', ETCD2_ONLY),
  retry_interval: f('ETCD_RETRY_INTERVAL'),
  snapshot: b('ETCD_SNAPSHOT'),
  snapshot_count: i('ETCD_SNAPSHOTCOUNT'),
  trace: s('ETCD_TRACE'),
  verbose: b('ETCD_VERBOSE'),
  very_verbose: b('ETCD_VERY_VERBOSE'),
  very_very_verbose: b('ETCD_VERY_VERY_VERBOSE'),
};

/** coreos.etcd2. */
export const ETCD2: Schema = {
  advertise_client_urls: s('ETCD_ADVERTISE_CLIENT_URLS'),
  ca_file: s('ETCD_CA_FILE', { deprecated: 'ca_file obsoleted by trusted_ca_file and client_cert_auth' }),
  cert_file: s('ETCD_CERT_FILE'),
  client_cert_auth: b('ETCD_CLIENT_CERT_AUTH'),
  cors: s('ETCD_CORS'),
  data_dir: s('ETCD_DATA_DIR'),
  debug: b('ETCD_DEBUG'),
  discovery: s('ETCD_DISCOVERY'),
  discovery_fallback: s('ETCD_DISCOVERY_FALLBACK'),
  discovery_srv: s('ETCD_DISCOVERY_SRV'),
  discovery_proxy: s('ETCD_DISCOVERY_PROXY'),
  election_timeout: i('ETCD_ELECTION_TIMEOUT'),
  enable_pprof: b('ETCD_ENABLE_PPROF'),
  force_new_cluster: b('ETCD_FORCE_NEW_CLUSTER'),
  heartbeat_interval: i('ETCD_HEARTBEAT_INTERVAL'),
  initial_advertise_peer_urls: s('ETCD_INITIAL_ADVERTISE_PEER_URLS'),
  initial_cluster: s('ETCD_INITIAL_CLUSTER'),
  initial_cluster_state: s('ETCD_INITIAL_CLUSTER_STATE'),
  initial_cluster_token: s('ETCD_INITIAL_CLUSTER_TOKEN'),
  key_file: s('ETCD_KEY_FILE'),
  listen_client_urls: s('ETCD_LISTEN_CLIENT_URLS'),
  listen_peer_urls: s('ETCD_LISTEN_PEER_URLS'),
  log_package_levels: s('ETCD_LOG_PACKAGE_LEVELS'),
  max_snapshots: i('ETCD_MAX_SNAPSHOTS'),
  max_wals: i('ETCD_MAX_WALS'),
  name: s('ETCD_NAME'),
  peer_ca_file: s('ETCD_PEER_CA_FILE', {
    deprecated: 'peer_ca_file obsoleted peer_trusted_ca_file and peer_client_cert_auth',
  }),
  peer_cert_file: s('ETCD_PEER_CERT_FILE'),
  peer_key_file: s('ETCD_PEER_KEY_FILE'),
  peer_client_cert_auth: b('ETCD_PEER_CLIENT_CERT_AUTH'),
  peer_trusted_ca_file: s('ETCD_PEER_TRUSTED_CA_FILE'),
  proxy: s('ETCD_PROXY', { valid: /^(on|off|readonly)$/ }),
  proxy_dial_timeout: i('ETCD_PROXY_DIAL_TIMEOUT'),
  proxy_failure_wait: i('ETCD_PROXY_FAILURE_WAIT'),
  proxy_read_timeout: i('ETCD_PROXY_READ_TIMEOUT'),
  proxy_refresh_interval: i('ETCD_PROXY_REFRESH_INTERVAL'),
  proxy_write_timeout: i('ETCD_PROXY_WRITE_TIMEOUT'),
  snapshot_count: i('ETCD_SNAPSHOT_COUNT'),
  strict_reconfig_check: b('ETCD_STRICT_RECONFIG_CHECK'),
  trusted_ca_file: s('ETCD_TRUSTED_CA_FILE'),
  wal_dir: s('ETCD_WAL_DIR'),
};

/** coreos.fleet (the env names are fleet's; flotilla writes the keys to flotilla.conf). */
export const FLEET: Schema = {
  agent_ttl: s('FLEET_AGENT_TTL'),
  authorized_keys_file: s('FLEET_AUTHORIZED_KEYS_FILE'),
  disable_engine: b('FLEET_DISABLE_ENGINE'),
  engine_reconcile_interval: f('FLEET_ENGINE_RECONCILE_INTERVAL'),
  etcd_cafile: s('FLEET_ETCD_CAFILE'),
  etcd_certfile: s('FLEET_ETCD_CERTFILE'),
  etcd_keyfile: s('FLEET_ETCD_KEYFILE'),
  etcd_key_prefix: s('FLEET_ETCD_KEY_PREFIX'),
  etcd_request_timeout: f('FLEET_ETCD_REQUEST_TIMEOUT'),
  etcd_servers: s('FLEET_ETCD_SERVERS'),
  etcd_username: s('FLEET_ETCD_USERNAME'),
  etcd_password: s('FLEET_ETCD_PASSWORD'),
  metadata: s('FLEET_METADATA'),
  public_ip: s('FLEET_PUBLIC_IP'),
  token_limit: i('FLEET_TOKEN_LIMIT'),
  verbosity: i('FLEET_VERBOSITY'),
  verify_units: b('FLEET_VERIFY_UNITS'),
};

/** coreos.flannel. */
export const FLANNEL: Schema = {
  etcd_endpoints: s('FLANNELD_ETCD_ENDPOINTS'),
  etcd_cafile: s('FLANNELD_ETCD_CAFILE'),
  etcd_certfile: s('FLANNELD_ETCD_CERTFILE'),
  etcd_keyfile: s('FLANNELD_ETCD_KEYFILE'),
  etcd_prefix: s('FLANNELD_ETCD_PREFIX'),
  etcd_username: s('FLANNELD_ETCD_USERNAME'),
  etcd_password: s('FLANNELD_ETCD_PASSWORD'),
  ip_masq: s('FLANNELD_IP_MASQ'),
  subnet_file: s('FLANNELD_SUBNET_FILE'),
  interface: s('FLANNELD_IFACE'),
  public_ip: s('FLANNELD_PUBLIC_IP'),
};

// `(?i:sun|…)` of the Go pattern, spelled out (inline flags need a newer V8 than Node 20's).
const DAY = '[Ss][Uu][Nn]|[Mm][Oo][Nn]|[Tt][Uu][Ee]|[Ww][Ee][Dd]|[Tt][Hh][Uu]|[Ff][Rr][Ii]|[Ss][Aa][Tt]';

/** coreos.locksmith (window keys map to the unprefixed REBOOT_WINDOW_* names, as CoreOS did). */
export const LOCKSMITH: Schema = {
  endpoint: s('LOCKSMITHD_ENDPOINT'),
  etcd_cafile: s('LOCKSMITHD_ETCD_CAFILE'),
  etcd_certfile: s('LOCKSMITHD_ETCD_CERTFILE'),
  etcd_keyfile: s('LOCKSMITHD_ETCD_KEYFILE'),
  etcd_username: s('LOCKSMITHD_ETCD_USERNAME'),
  etcd_password: s('LOCKSMITHD_ETCD_PASSWORD'),
  group: s('LOCKSMITHD_GROUP'),
  window_start: s('REBOOT_WINDOW_START', {
    valid: new RegExp(`^((${DAY}) )?0*([0-9]|1[0-9]|2[0-3]):0*([0-9]|[1-5][0-9])$`),
  }),
  window_length: s('REBOOT_WINDOW_LENGTH', { valid: /^[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+$/ }),
};

/** coreos.update. */
export const UPDATE: Schema = {
  reboot_strategy: s('REBOOT_STRATEGY', { valid: /^(etcd-lock|reboot|off)$/ }),
  group: s('GROUP'),
  server: s('SERVER'),
};

export const OEM: Schema = {
  id: s(),
  name: s(),
  version_id: s(),
  home_url: s(),
  bug_report_url: s(),
};

export const UNIT_COMMANDS =
  /^(start|stop|restart|reload|try-restart|reload-or-restart|reload-or-try-restart)$/;

export const UNIT: Schema = {
  name: s(),
  mask: b(),
  enable: b(),
  runtime: b(),
  content: s(),
  command: s(undefined, { valid: UNIT_COMMANDS }),
  drop_ins: { type: { slice: { name: s(), content: s() } } },
};

const REMOTE = {
  deprecated: 'trying to fetch from a remote endpoint introduces too many intermittent errors',
};

export const USER: Schema = {
  name: s(),
  passwd: s(),
  ssh_authorized_keys: { type: { slice: 'string' } },
  coreos_ssh_import_github: s(undefined, REMOTE),
  coreos_ssh_import_github_users: { type: { slice: 'string' }, ...REMOTE },
  coreos_ssh_import_url: s(undefined, REMOTE),
  gecos: s(),
  homedir: s(),
  no_create_home: b(),
  primary_group: s(),
  groups: { type: { slice: 'string' } },
  no_user_group: b(),
  system: b(),
  no_log_init: b(),
  shell: s(),
};

export const ENCODING = /^(base64|b64|gz|gzip|gz\+base64|gzip\+base64|gz\+b64|gzip\+b64)$/;
export const PERMISSIONS = /^0?[0-7]{3,4}$/;

export const FILE: Schema = {
  encoding: s(undefined, { valid: ENCODING }),
  content: s(),
  owner: s(),
  path: s(),
  permissions: s(undefined, { valid: PERMISSIONS }),
};

const NO_LONGER = (what: string) => ({ deprecated: `${what} is no longer shipped in Container Linux` });

export const COREOS: Schema = {
  etcd: { type: ETCD, ...NO_LONGER('etcd') },
  etcd2: { type: ETCD2, ...NO_LONGER('etcd2') },
  flannel: { type: FLANNEL },
  fleet: { type: FLEET, ...NO_LONGER('fleet') },
  locksmith: { type: LOCKSMITH },
  oem: { type: OEM },
  update: { type: UPDATE },
  units: { type: { slice: UNIT } },
};

export const CLOUD_CONFIG: Schema = {
  ssh_authorized_keys: { type: { slice: 'string' } },
  coreos: { type: COREOS },
  write_files: { type: { slice: FILE } },
  hostname: s(),
  users: { type: { slice: USER } },
  manage_etc_hosts: s(),
};
