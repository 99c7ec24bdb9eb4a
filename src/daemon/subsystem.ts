/**
 * The seam between the agent process and the parts it hosts beside the machine agent: the proxy,
 * first boot (cloudinit), OS updates (update), reboot coordination (locksmith) and the dashboard.
 *
 * Each part is a Subsystem with four verbs, and the daemon knows nothing else about it:
 *   start(ctx)   once, after the registry, presence and systemd are up; throws to refuse the
 *                start (the daemon logs it and goes on without the part, unless it is `required`);
 *   reload(cfg)  on SIGHUP with the newly loaded config; says which keys it applied live and which
 *                need a restart (the daemon names those in one log line);
 *   stop(mode)   in reverse start order at shutdown; `restart` keeps whatever the next agent
 *                adopts (kernel rules, locks held), `leave` releases everything;
 *   status()     a JSON-able snapshot, served by the API (`/flotilla/v1/status`) and dumped on
 *                SIGUSR1.
 *
 * INVARIANTS: a subsystem never reaches into another one; what it needs from the cluster comes
 * through ctx (ports, not concrete classes), so it can be started against fakes in unit tests.
 */
import type { KvStore } from '../registry/kv.js';
import type { Registry } from '../registry/registry.js';
import type { SystemdManager } from '../systemd/manager.js';
import type { Logger } from '../lib/log.js';

export interface SubsystemContext<C = unknown> {
  readonly config: C;
  readonly log: Logger;
  readonly machineId: string;
  /** The registry and its store; absent only for parts that run before the agent has one. */
  readonly registry?: Registry;
  readonly store?: KvStore;
  readonly systemd?: SystemdManager;
  /** Aborted when the daemon begins to shut down. */
  readonly signal: AbortSignal;
}

export type SubsystemState = 'disabled' | 'starting' | 'running' | 'degraded' | 'stopped' | 'failed';

export interface SubsystemStatus {
  state: SubsystemState;
  /** One human line: why it is degraded, failed or disabled. */
  reason?: string;
  [detail: string]: unknown;
}

export interface ReloadOutcome {
  /** Config keys that took effect without a restart. */
  applied: string[];
  /** Config keys that changed but need an agent restart. */
  needRestart: string[];
}

export type StopMode = 'leave' | 'restart';

export interface Subsystem<C = unknown> {
  readonly name: string;
  /** A required part that fails to start fails the agent's start; others degrade. */
  readonly required?: boolean;
  start(ctx: SubsystemContext<C>): Promise<void>;
  reload(next: C): Promise<ReloadOutcome>;
  stop(mode: StopMode): Promise<void>;
  status(): SubsystemStatus;
}
