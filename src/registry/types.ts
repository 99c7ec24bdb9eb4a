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
 */
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

export const KEYS = {
  unitBody: (hash: string) => `unit/${hash}`,
  job: (name: string) => `job/${name}`,
  schedule: (name: string) => `schedule/${name}`,
  machine: (id: string) => `machine/${id}`,
  state: (name: string, machineID: string) => `state/${name}/${machineID}`,
  statesOf: (name: string) => `state/${name}/`,
  leader: 'engine/leader',
  prefixes: {
    unitBody: 'unit/',
    job: 'job/',
    schedule: 'schedule/',
    machine: 'machine/',
    state: 'state/',
  },
} as const;
