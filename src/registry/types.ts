/**
 * The cluster's state, as records stored in the registry. Names follow fleet (Documentation/states.md):
 * a unit's desired state is `inactive | loaded | launched`; what systemd reports is the
 * LoadState/ActiveState/SubState triplet.
 *
 * Key layout below the store's prefix (every value is JSON):
 *   unit/<hash>               UnitBody      content-addressed unit file (normalised form)
 *   job/<name>                JobRecord     what the user asked for: body hash + desired state
 *   schedule/<name>           ScheduleRecord  where the engine placed it, or why it could not
 *   machine/<id>              MachineRecord presence, bound to the machine's lease
 *   state/<name>/<machineID>  UnitStateRecord  what systemd reports, bound to the machine's lease
 *   engine/leader             LeaderRecord  the engine lease holder, bound to its lease
 *   services/<name>/<machineID>:<port>  ServiceEndpointRecord  a container's service endpoint,
 *                             bound to the lease of the machine that runs the container
 */
import type { FleetRequirements } from '../unit/fleet.js';

export const DESIRED_STATES = ['inactive', 'loaded', 'launched'] as const;
export type DesiredState = (typeof DESIRED_STATES)[number];

export function isDesiredState(s: unknown): s is DesiredState {
  return typeof s === 'string' && (DESIRED_STATES as readonly string[]).includes(s);
}

export interface UnitBody {
  hash: string;
  /** The unit file in normalised (serialized) form; sha1(body) === hash. */
  body: string;
}

export interface JobRecord {
  name: string;
  hash: string;
  desiredState: DesiredState;
}

/** The parts of a unit's `[X-Fleet]` section that placement reads (warnings are not needed). */
export type PlacementRequirements = Omit<FleetRequirements, 'warnings'>;

/** A submitted unit as the engine sees it: the job record plus its parsed [X-Fleet] rules. */
export interface SchedulerJob extends JobRecord {
  requirements: PlacementRequirements;
}

export interface ScheduleRecord {
  name: string;
  /** The machine the unit is placed on; absent while it cannot be placed. */
  machineID?: string;
  /** Why the unit is not placed (shown by the CLI), e.g. "no machine matches MachineMetadata region=eu". */
  reason?: string;
}

export interface MachineRecord {
  id: string;
  publicIP: string;
  metadata: Record<string, string>;
  version: string;
  /** The presence lease the machine is registered under (set by registerMachine). */
  lease?: string;
  /** TCP port of the machine's liveness responder on publicIP (absent: not probed). */
  livenessPort?: number;
  /** The agent's peer API address `host:port` (mutual-TLS TCP listener), when it has one. */
  api?: string;
  /**
   * Set while the machine drains before a coordinated reboot (src/locksmith/): the engine places
   * nothing new here and moves its units elsewhere; Global units stay. Cleared once it is back.
   */
  unschedulable?: boolean;
}

export interface UnitStateRecord {
  name: string;
  machineID: string;
  hash: string;
  loadState: string;
  activeState: string;
  subState: string;
  /** What the agent did with the unit: `loaded` (installed) or `launched` (started). */
  jobState?: 'loaded' | 'launched';
  /** Why the unit failed or waits (container units: `image pull failed: …`, `docker unavailable: …`). */
  reason?: string;
  /** Container units: the container as Docker reports it. */
  container?: ContainerStateInfo;
  /** Container units while the agent pulls their image. */
  pull?: PullStateInfo;
}

export interface ContainerStateInfo {
  name: string;
  image: string;
  /** 12 hex digits; absent when there is no container. */
  id?: string;
  /** Docker's state (running, exited, created …) or `absent`. */
  state: string;
  /** starting | healthy | unhealthy | none */
  health: string;
  exitCode?: number;
}

export interface PullStateInfo {
  image: string;
  /** Bytes downloaded and known total so far (layers whose size is known). */
  current: number;
  total: number;
  layers: number;
  layersDone: number;
}

export interface LeaderRecord {
  machineID: string;
}

/**
 * Health of a service endpoint, from the container's Docker health check: `none` (the container has
 * no health check), `starting` (not yet passed), `healthy`. An unhealthy container is not registered.
 */
export const ENDPOINT_HEALTH = ['none', 'starting', 'healthy'] as const;
export type EndpointHealth = (typeof ENDPOINT_HEALTH)[number];

/**
 * A service name: a DNS label (RFC 1123): 1–63 lower-case letters, digits and hyphens, starting and
 * ending with a letter or digit. It is one registry key segment and one DNS-friendly name.
 */
export const SERVICE_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function isServiceName(s: unknown): s is string {
  return typeof s === 'string' && SERVICE_NAME_RE.test(s);
}

export interface ServiceEndpointRecord {
  service: string;
  machineID: string;
  /** Address clients connect to: the machine's public IP. */
  ip: string;
  port: number;
  /** Docker container ID. */
  container: string;
  /** The flotilla unit that runs the container, when known. */
  unit?: string;
  health: EndpointHealth;
  /** When the endpoint was (last) registered, ms since epoch. */
  registered: number;
}

export const KEYS = {
  unitBody: (hash: string) => `unit/${hash}`,
  job: (name: string) => `job/${name}`,
  schedule: (name: string) => `schedule/${name}`,
  machine: (id: string) => `machine/${id}`,
  state: (name: string, machineID: string) => `state/${name}/${machineID}`,
  statesOf: (name: string) => `state/${name}/`,
  leader: 'engine/leader',
  endpoint: (service: string, machineID: string, port: number) => `services/${service}/${machineID}:${port}`,
  endpointsOf: (service: string) => `services/${service}/`,
  prefixes: {
    unitBody: 'unit/',
    job: 'job/',
    schedule: 'schedule/',
    machine: 'machine/',
    state: 'state/',
    service: 'services/',
  },
} as const;
