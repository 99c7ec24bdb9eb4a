/**
 * First-boot datasources: where a machine finds its user-data (cloud-config, a script, or an
 * Ignition config) and its metadata (hostname, addresses, ssh keys, network).
 *
 * The shape is coreos-cloudinit's datasource interface (host-tools.md §1.8): cloud-config and
 * Ignition both read through it, so a source behaves the same for either. Implementations live in
 * this folder, one per source; selection (first available wins, retries with backoff, overall
 * timeout) is `select.ts`.
 */

export interface Metadata {
  hostname?: string;
  publicIPv4?: string;
  privateIPv4?: string;
  publicIPv6?: string;
  privateIPv6?: string;
  /** Key name → OpenSSH public key line. */
  sshPublicKeys: Record<string, string>;
  /** systemd-networkd units derived from the source's network metadata (`-convert-netconf`). */
  networkUnits?: { name: string; contents: string }[];
  /** Raw network configuration a source carries for another format (config-drive: Debian interfaces). */
  networkConfig?: { format: 'debian'; contents: string };
}

export interface Datasource {
  /** coreos-cloudinit's Type() string: `local-file`, `url`, `proc-cmdline`, `cloud-drive`, `vmware` … */
  readonly type: string;
  /** Whether the source can be read now. */
  isAvailable(): Promise<boolean>;
  /** Whether availability can change later (then selection retries with backoff). */
  availabilityChanges(): boolean;
  /** A human description of where it reads (a path or URL without credentials), for logs. */
  configRoot(): string;
  fetchMetadata(): Promise<Metadata>;
  /** The raw user-data; an empty buffer means the source has none. Never logged. */
  fetchUserdata(): Promise<Buffer>;
}
