/**
 * MachineAgent: turns the cluster's schedule into systemd actions on this machine and publishes what
 * systemd reports. Level-triggered: registry changes (ClusterView) and systemd change events only
 * wake it; every pass plans from the newest registry view and a fresh read of systemd (one
 * ListUnitsByNames of the units we installed), never from the events themselves.
 *
 * INVARIANTS
 *   - One reconcile at a time (an exclusive runner); triggers that arrive during a run coalesce into
 *     one more run, which starts after the run ends and so sees every change that arrived meanwhile.
 *   - After a pass that changed something, the agent plans again at once (up to MAX_FOLLOW_UPS times
 *     in a row, so a unit that exits as soon as it starts cannot spin the loop); a change that
 *     arrived during a pass is never dropped, even if its event was.
 *   - Safety resync every `resyncMs` (the daemon bounds it to 5–60 s): re-reads the units directory
 *     (files we installed but forgot) and runs a pass, which compares what systemd runs (fresh read)
 *     with what is scheduled here and acts on the difference.
 *   - Only units this agent installed (files in its units directory) are ever stopped or removed.
 *   - While the registry cannot be read, nothing is stopped (fleet #1289/#1690): the planner gets
 *     `registryAvailable: false`.
 *   - Adoption: after a restart, units already running the right file are left alone (fleet #1086).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Registry } from '../registry/registry.js';
import type { LeaseKeeper } from '../registry/lease.js';
import type { MachineRecord, UnitStateRecord } from '../registry/types.js';
import type { SystemdManager, UnitState, UnitWatch } from '../systemd/manager.js';
import type { Logger } from '../lib/log.js';
import { UnitFile, validateUnitName } from '../unit/index.js';
import type { ChangeKind, ClusterView } from '../registry/cluster-view.js';
import { observeReconcile } from '../lib/metrics.js';
import { SerialRunner } from '../lib/runner.js';
import { execute } from './executor.js';
import { planDesiredUnits } from './plan-desired.js';
import { planAgent, type DesiredUnit, type ObservedUnit, type ReportedState } from './planner.js';
import { plainUnitHooks, type UnitHooks } from './unit-hooks.js';
import { emptyState } from '../systemd/properties.js';
import { isTemplateName } from '../systemd/unit-deps.js';

/** Passes in a row that may follow a pass's own actions (then an event or the resync wakes it). */
export const MAX_FOLLOW_UPS = 3;

/** The view of the registry the agent reads (ClusterView implements it). */
export type AgentView = Pick<
  ClusterView,
  'snap' | 'available' | 'jobsFor' | 'schedulesOn' | 'body' | 'statesOn'
> & {
  on(event: 'changed', fn: (kinds: Set<ChangeKind>) => void): unknown;
  on(event: 'available', fn: (up: boolean) => void): unknown;
};

export interface MachineAgentDeps {
  registry: Pick<Registry, 'reportUnitStates'>;
  view: AgentView;
  systemd: SystemdManager;
  lease: Pick<LeaseKeeper, 'id'>;
  machine: MachineRecord;
  /** The units directory as this process sees it (to find what we installed after a restart). */
  unitsDir: string;
  log: Logger;
  /** Safety-net resync, ms. */
  resyncMs: number;
  /**
   * What units need beyond systemd (container units through Docker: the daemon passes ContainerUnits).
   * Absent: plain units only (`plainUnitHooks`), and container units fail to start.
   */
  hooks?: UnitHooks | undefined;
}

export class MachineAgent {
  /** Installed units → hash of the installed file (undefined: unreadable). */
  readonly installed = new Map<string, string | undefined>();
  private readonly observed = new Map<string, UnitState>();
  private readonly jobStates = new Map<string, 'loaded' | 'launched'>();
  private publishQueue = new Map<string, { resolve: () => void; reject: (e: Error) => void }[]>();
  private publishScheduled = false;
  private readonly runner: SerialRunner;
  private stopped = false;
  private fenced = false;
  private watch: UnitWatch | undefined;
  private resync: NodeJS.Timeout | undefined;
  /** Resolves after the first complete reconcile (READY=1 waits for it). */
  readonly firstReconcile: Promise<void>;
  private resolveFirst!: () => void;
  reconciles = 0;
  private followUps = 0;
  private resyncDue = false;
  private readonly hooks: UnitHooks;

  constructor(private readonly d: MachineAgentDeps) {
    this.hooks = d.hooks ?? plainUnitHooks;
    this.firstReconcile = new Promise((r) => (this.resolveFirst = r));
    this.runner = new SerialRunner(
      () => this.reconcile(),
      (err) => this.d.log.warn({ err: err.message }, 'reconcile failed'),
    );
  }

  async start(): Promise<void> {
    this.scanInstalled();
    const names = [...this.installed.keys()];
    for (const name of names) {
      try {
        const st = await this.d.systemd.state(name);
        this.observed.set(name, st);
        this.jobStates.set(
          name,
          ['active', 'activating', 'reloading'].includes(st.activeState) ? 'launched' : 'loaded',
        );
      } catch (err) {
        // One unreadable unit must not keep the agent from starting; the planner reinstalls it.
        this.installed.set(name, undefined);
        this.d.log.warn(
          { unit: name, err: (err as Error).message },
          'cannot read the state of an installed unit',
        );
      }
    }
    this.watch = this.d.systemd.watch();
    void this.follow(this.watch);
    // Other machines' unit states and the leader key do not change what runs here.
    this.d.view.on('changed', (kinds) => {
      if (kinds.has('job') || kinds.has('schedule') || kinds.has('body') || kinds.has('machine'))
        this.trigger();
    });
    this.d.view.on('available', () => this.trigger());
    this.resync = setInterval(() => {
      this.resyncDue = true;
      this.trigger();
    }, this.d.resyncMs);
    this.resync.unref();
    this.trigger();
  }

  /** Read the units directory: what we installed, and the hash of each file (`onlyNew`: add only). */
  private scanInstalled(onlyNew = false): void {
    let files: string[] = [];
    try {
      files = readdirSync(this.d.unitsDir);
    } catch {
      return; // nothing installed yet
    }
    for (const f of files) {
      try {
        validateUnitName(f);
      } catch {
        continue; // temp files, foreign names
      }
      if (onlyNew && this.installed.has(f)) continue;
      let hash: string | undefined;
      try {
        // A generated container service records the hash of the unit as submitted (the hooks know).
        hash = this.hooks.installedHash(UnitFile.parse(readFileSync(join(this.d.unitsDir, f))));
      } catch {
        hash = undefined;
      }
      this.installed.set(f, hash);
    }
  }

  private async follow(w: UnitWatch): Promise<void> {
    try {
      for await (const ev of w) {
        if (!this.installed.has(ev.unit)) continue;
        if (ev.type === 'changed') this.observed.set(ev.unit, ev.state);
        else this.observed.delete(ev.unit);
        this.trigger();
      }
    } catch (err) {
      if (!this.stopped) this.d.log.warn({ err: (err as Error).message }, 'systemd watch ended');
    }
  }

  /** Ask for a reconcile; runs now or right after the current one. */
  trigger(): void {
    this.runner.trigger();
  }

  /** Resolves when no pass runs and none is due (tests, shutdown). */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  /** Stop every unit here (the registry says this machine is gone, or we leave the cluster). */
  fence(on: boolean): void {
    if (this.fenced === on) return;
    this.fenced = on;
    this.d.log.warn({ fenced: on }, on ? 'fenced: stopping local units' : 'unfenced');
    this.trigger();
  }

  /**
   * Fresh LOAD/ACTIVE/SUB of every installed unit (one call): a pass never trusts events alone (a
   * start's state change can reach us after the job ended, and a unit we stopped tracking sends
   * nothing at all).
   */
  private async readSystemd(): Promise<void> {
    const names = [...this.installed.keys()].filter((n) => !isTemplateName(n));
    if (names.length === 0) return;
    const list = await this.d.systemd.list(names);
    for (const u of list) {
      if (!this.installed.has(u.name)) continue;
      const cur = this.observed.get(u.name) ?? emptyState(u.name);
      this.observed.set(u.name, {
        ...cur,
        loadState: u.loadState,
        activeState: u.activeState,
        subState: u.subState,
      });
    }
  }

  private async reconcile(): Promise<void> {
    const view = this.d.view;
    if (!view.snap) return;
    const t0 = performance.now();
    if (this.resyncDue) {
      this.resyncDue = false;
      this.scanInstalled(true);
    }
    await this.readSystemd();
    const me = this.d.machine;
    let desired: DesiredUnit[] = [];
    if (!this.fenced) {
      const { units } = planDesiredUnits({
        machine: me,
        jobs: view.jobsFor(me.id),
        schedules: view.schedulesOn(me.id),
      });
      desired = units.flatMap((j) => {
        const body = view.body(j);
        return body === undefined ? [] : [{ name: j.name, hash: j.hash, desiredState: j.desiredState, body }];
      });
    }
    const seen = new Map<string, ObservedUnit>();
    for (const [name, hash] of this.installed) {
      const st = this.observed.get(name);
      seen.set(name, {
        loadState: st?.loadState ?? 'loaded',
        activeState: st?.activeState ?? 'inactive',
        subState: st?.subState ?? 'dead',
        hash,
      });
    }
    // Container units: pull before start, wait for a pull, failures with reasons (overlaid).
    const { desired: wanted, observed } = await this.hooks.prepare(desired, seen);
    const reported = new Map<string, ReportedState>();
    for (const [name, r] of view.statesOn(me.id)) reported.set(name, r);
    const actions = planAgent({
      machineID: me.id,
      desired: wanted,
      observed,
      registryAvailable: view.available || this.fenced,
      reported,
    });
    let changed = false;
    if (actions.length > 0) {
      const results = await execute(
        this.d.systemd,
        actions,
        {
          installed: (name, hash) => {
            if (hash === undefined) {
              this.installed.delete(name);
              this.observed.delete(name);
              this.jobStates.delete(name);
              this.hooks.forget(name);
            } else this.installed.set(name, hash);
          },
          jobState: (name, s) => this.jobStates.set(name, s),
          report: (name) => this.publish(name),
          prepareInstall: (name, hash, body) => this.hooks.prepareInstall(name, hash, body),
          pull: (name, image) => this.hooks.pull(name, image),
        },
        this.d.log,
      );
      changed = results.some((r) => r.ok && r.action.type !== 'report-state');
    }
    // Level-triggered: what we just did (and whatever arrived meanwhile) is checked by another pass.
    if (changed && this.followUps < MAX_FOLLOW_UPS) {
      this.followUps++;
      this.runner.rerun();
    } else this.followUps = 0;
    this.reconciles++;
    const ms = performance.now() - t0;
    observeReconcile(ms);
    if (actions.length > 0) this.d.log.debug({ actions: actions.length, ms }, 'reconciled');
    this.resolveFirst();
  }

  /**
   * Publish a unit's state for this machine (or delete it when the unit is gone). Calls made in the
   * same tick are coalesced into one batch: one systemd read per unit (in parallel) and txns of up to
   * 100 records, so starting hundreds of units costs a few registry round trips, not one each.
   */
  publish(name: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let waiters = this.publishQueue.get(name);
      if (!waiters) this.publishQueue.set(name, (waiters = []));
      waiters.push({ resolve, reject });
      if (!this.publishScheduled) {
        this.publishScheduled = true;
        setImmediate(() => void this.flushPublish());
      }
    });
  }

  private async flushPublish(): Promise<void> {
    this.publishScheduled = false;
    const batch = this.publishQueue;
    this.publishQueue = new Map();
    const settle = (err?: Error) => {
      for (const ws of batch.values())
        for (const w of ws) {
          if (err) w.reject(err);
          else w.resolve();
        }
    };

    try {
      const leaseId = this.d.lease.id;
      if (leaseId === undefined || !this.d.view.available) return settle();
      const states: UnitStateRecord[] = [];
      const cleared: string[] = [];
      await Promise.all(
        [...batch.keys()].map(async (name) => {
          if (!this.installed.has(name)) {
            cleared.push(name);
            return;
          }
          const st = await this.d.systemd.state(name);
          this.observed.set(name, st);
          const rec: UnitStateRecord = this.hooks.decorate({
            name,
            machineID: this.d.machine.id,
            hash: this.installed.get(name) ?? '',
            loadState: st.loadState,
            activeState: st.activeState,
            subState: st.subState,
            jobState: this.jobStates.get(name) ?? 'loaded',
          }); // container units: pull progress, reason, container
          states.push(rec);
        }),
      );
      await this.d.registry.reportUnitStates(this.d.machine.id, states, cleared, leaseId);
      settle();
    } catch (err) {
      settle(err as Error);
    }
  }

  /** Re-publish every state (after a new lease was granted: the old records went with the old lease). */
  async republish(): Promise<void> {
    await Promise.all([...this.installed.keys()].map((name) => this.publish(name).catch(() => undefined)));
  }

  /** Stop reconciling. With `stopUnits`, stop and remove every unit we installed first. */
  async shutdown(stopUnits: boolean): Promise<void> {
    if (stopUnits) {
      this.fenced = true;
      this.trigger();
      await this.runner.idle();
    }
    this.stopped = true;
    clearInterval(this.resync);
    this.watch?.close();
    await this.runner.stop();
  }

  /** For SIGUSR1: the agent's state as plain JSON. */
  dump(): Record<string, unknown> {
    const hooks = this.hooks.dump();
    return {
      machine: this.d.machine,
      fenced: this.fenced,
      ...(hooks ? { containers: hooks } : {}),
      reconciles: this.reconciles,
      installed: Object.fromEntries(this.installed),
      jobStates: Object.fromEntries(this.jobStates),
      observed: Object.fromEntries(
        [...this.observed].map(([k, v]) => [k, `${v.loadState}/${v.activeState}/${v.subState}`]),
      ),
    };
  }
}
