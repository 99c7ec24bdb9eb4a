/**
 * ClusterView: this process's copy of the registry, kept current by ONE watch (fleet did a recursive
 * GET of everything on every tick and every event; we read once and then apply changes).
 *
 *   start(): snapshot (with unit bodies) at revision R, then watch everything from R + 1.
 *   Every watch batch is applied in order; listeners get `changed(kinds)` once per batch.
 *   A broken watch (registry down) is retried with backoff from the last applied revision; while it
 *   is down `available` is false (the agent then stops nothing). A compacted revision means: read a
 *   fresh snapshot and watch again.
 *
 * Bodies are content-addressed and immutable, so parsed [X-Fleet] requirements are cached by hash.
 */
import { EventEmitter } from 'node:events';
import { RegistryFollower } from '../registry/follow.js';
import type { Registry, Snapshot } from '../registry/registry.js';
import {
  KEYS,
  type JobRecord,
  type LeaderRecord,
  type MachineRecord,
  type ScheduleRecord,
  type UnitBody,
  type UnitStateRecord,
} from '../registry/types.js';
import type { SchedulerJob } from '../engine/types.js';
import { UnitFile, fleetRequirements } from '../unit/index.js';

export type ChangeKind = 'job' | 'schedule' | 'machine' | 'state' | 'leader' | 'body';

export interface ClusterViewEvents {
  changed: [kinds: Set<ChangeKind>];
  /** Another agent tried to register with `machineID` (a duplicate /etc/machine-id). */
  collision: [machineID: string, publicIP: string];
  available: [up: boolean];
  error: [err: Error];
  /** Every applied watch batch as it came (the API's event stream, dynamic metadata). */
  batch: [revision: number, events: readonly WatchedEvent[]];
  /** A fresh snapshot replaced the view (start, or after compaction): consumers re-read. */
  resync: [revision: number];
}

export interface WatchedEvent {
  type: 'put' | 'delete';
  kv: { key: string; value: string };
}

export class ClusterView extends EventEmitter<ClusterViewEvents> {
  snap: Snapshot | undefined;
  revision = 0;
  available = false;
  private readonly parsed = new Map<string, SchedulerJob['requirements'] | null>();
  private readonly follower: RegistryFollower;
  private jobsCache: SchedulerJob[] | undefined;
  private jobsByName = new Map<string, SchedulerJob>();
  private globalJobs: SchedulerJob[] = [];
  /** machineID → unit name → schedule record (the engine's placements, by machine). */
  private schedIndex = new Map<string, Map<string, ScheduleRecord>>();
  /** machineID → unit name → the state that machine published. */
  private stateIndex = new Map<string, Map<string, UnitStateRecord>>();

  constructor(private readonly registry: Registry) {
    super();
    this.follower = new RegistryFollower({
      registry,
      revision: () => this.revision,
      apply: (rev, events) => this.apply(rev, events),
      resync: () => this.resync(),
      error: (err) => this.emit('error', err),
      available: (up) => this.setAvailable(up),
      backoffMs: 250,
    });
  }

  async start(): Promise<void> {
    await this.resync();
    void this.follower.run();
  }

  private async resync(): Promise<void> {
    this.snap = await this.registry.snapshot({ bodies: true });
    this.revision = this.snap.revision;
    this.jobsCache = undefined;
    this.schedIndex = new Map();
    this.stateIndex = new Map();
    for (const [name, rec] of this.snap.schedules) this.indexSchedule(name, undefined, rec);
    for (const [name, byMachine] of this.snap.states)
      for (const [mid, rec] of byMachine) this.indexState(name, mid, rec);
    this.setAvailable(true);
    this.emit('changed', new Set<ChangeKind>(['job', 'schedule', 'machine', 'state', 'leader', 'body']));
    this.emit('resync', this.revision);
  }

  private setAvailable(up: boolean): void {
    if (this.available === up) return;
    this.available = up;
    this.emit('available', up);
  }

  private apply(revision: number, events: WatchedEvent[]): void {
    const snap = this.snap!;
    const kinds = new Set<ChangeKind>();
    for (const e of events) {
      const k = e.kv.key;
      const put = e.type === 'put';
      const val = <T>() => JSON.parse(e.kv.value) as T;
      if (k.startsWith(KEYS.prefixes.job)) {
        const name = k.slice(KEYS.prefixes.job.length);
        if (put) snap.jobs.set(name, val<JobRecord>());
        else snap.jobs.delete(name);
        kinds.add('job');
      } else if (k.startsWith(KEYS.prefixes.schedule)) {
        const name = k.slice(KEYS.prefixes.schedule.length);
        const old = snap.schedules.get(name);
        const rec = put ? val<ScheduleRecord>() : undefined;
        if (rec) snap.schedules.set(name, rec);
        else snap.schedules.delete(name);
        this.indexSchedule(name, old, rec);
        kinds.add('schedule');
      } else if (k.startsWith(KEYS.prefixes.machine)) {
        const id = k.slice(KEYS.prefixes.machine.length);
        if (put) snap.machines.set(id, val<MachineRecord>());
        else snap.machines.delete(id);
        kinds.add('machine');
      } else if (k.startsWith(KEYS.prefixes.state)) {
        const rest = k.slice(KEYS.prefixes.state.length);
        const slash = rest.lastIndexOf('/');
        const name = rest.slice(0, slash);
        const machine = rest.slice(slash + 1);
        let m = snap.states.get(name);
        if (put) {
          if (!m) snap.states.set(name, (m = new Map<string, UnitStateRecord>()));
          const rec = val<UnitStateRecord>();
          m.set(machine, rec);
          this.indexState(name, machine, rec);
        } else {
          if (m) {
            m.delete(machine);
            if (m.size === 0) snap.states.delete(name);
          }
          this.indexState(name, machine, undefined);
        }
        kinds.add('state');
      } else if (k === KEYS.leader) {
        if (put) snap.leader = val<LeaderRecord>();
        else delete snap.leader;
        kinds.add('leader');
      } else if (k.startsWith('collision/') && put) {
        const c = val<{ publicIP?: string }>();
        this.emit('collision', k.slice('collision/'.length), c.publicIP ?? '?');
      } else if (k.startsWith(KEYS.prefixes.unitBody)) {
        const hash = k.slice(KEYS.prefixes.unitBody.length);
        if (put) snap.bodies.set(hash, val<UnitBody>().body);
        else snap.bodies.delete(hash);
        kinds.add('body');
      }
    }
    this.revision = revision;
    snap.revision = revision;
    if (kinds.has('job') || kinds.has('body')) this.jobsCache = undefined;
    if (kinds.size > 0) this.emit('changed', kinds);
    this.emit('batch', revision, events);
  }

  private indexSchedule(
    name: string,
    old: ScheduleRecord | undefined,
    rec: ScheduleRecord | undefined,
  ): void {
    if (old?.machineID !== undefined) {
      const m = this.schedIndex.get(old.machineID);
      m?.delete(name);
      if (m?.size === 0) this.schedIndex.delete(old.machineID);
    }
    if (rec?.machineID !== undefined) {
      let m = this.schedIndex.get(rec.machineID);
      if (!m) this.schedIndex.set(rec.machineID, (m = new Map<string, ScheduleRecord>()));
      m.set(name, rec);
    }
  }

  private indexState(name: string, machineID: string, rec: UnitStateRecord | undefined): void {
    let m = this.stateIndex.get(machineID);
    if (rec) {
      if (!m) this.stateIndex.set(machineID, (m = new Map<string, UnitStateRecord>()));
      m.set(name, rec);
    } else if (m) {
      m.delete(name);
      if (m.size === 0) this.stateIndex.delete(machineID);
    }
  }

  /**
   * Apply the engine's own schedule writes now, before their watch events arrive (a re-plan must not
   * see the old schedule). Goes through the per-machine index like a watch event: writing
   * `snap.schedules` directly left the old machine's index entry behind, so on the leader's machine
   * a unit moved away stayed "scheduled here" and its agent never stopped it (issue 12 §1). The watch
   * events that follow are then no-ops for the index.
   */
  applyLocalSchedule(puts: readonly ScheduleRecord[], deletes: readonly string[]): void {
    const snap = this.snap;
    if (!snap) return;
    for (const name of deletes) {
      this.indexSchedule(name, snap.schedules.get(name), undefined);
      snap.schedules.delete(name);
    }
    for (const rec of puts) {
      this.indexSchedule(rec.name, snap.schedules.get(rec.name), rec);
      snap.schedules.set(rec.name, rec);
    }
    if (deletes.length + puts.length > 0) this.emit('changed', new Set<ChangeKind>(['schedule']));
  }

  /** The schedule records that place units on one machine (O(units there), not O(cluster)). */
  schedulesOn(machineID: string): ScheduleRecord[] {
    return [...(this.schedIndex.get(machineID)?.values() ?? [])];
  }

  /** The unit states one machine published, by unit name. */
  statesOn(machineID: string): ReadonlyMap<string, UnitStateRecord> {
    return this.stateIndex.get(machineID) ?? new Map();
  }

  /**
   * The jobs that can concern one machine: those scheduled on it plus every Global job. This is all
   * `planDesiredUnits` looks at, so an agent's reconcile costs O(its units), not O(cluster).
   */
  jobsFor(machineID: string): SchedulerJob[] {
    this.schedulerJobs();
    const out: SchedulerJob[] = [];
    for (const name of this.schedIndex.get(machineID)?.keys() ?? []) {
      const j = this.jobsByName.get(name);
      if (j && !j.requirements.global) out.push(j);
    }
    for (const j of this.globalJobs) out.push(j);
    return out;
  }

  /** The body of a job, or undefined if its body is not (yet) known. */
  body(job: JobRecord): string | undefined {
    return this.snap?.bodies.get(job.hash);
  }

  /**
   * Jobs with parsed requirements, for the scheduler and the agent's desired-state planner. Built
   * once per change of jobs or bodies and shared (treat as read-only).
   */
  schedulerJobs(): SchedulerJob[] {
    if (this.jobsCache) return this.jobsCache;
    const out: SchedulerJob[] = [];
    const byName = new Map<string, SchedulerJob>();
    const globals: SchedulerJob[] = [];
    for (const job of this.snap?.jobs.values() ?? []) {
      const key = `${job.name}\0${job.hash}`; // specifiers (%n, %i …) make requirements name-dependent
      let req = this.parsed.get(key);
      if (req === undefined) {
        const body = this.body(job);
        if (body === undefined) continue; // the body arrives with the same revision; skip until known
        try {
          const { warnings: _w, ...r } = fleetRequirements(job.name, UnitFile.parse(body));
          req = r;
        } catch {
          req = null; // invalid [X-Fleet] (stored by an older writer): never placed without its rules
        }
        if (this.parsed.size > 50_000) this.parsed.clear();
        this.parsed.set(key, req);
      }
      if (req) {
        const j = { ...job, requirements: req };
        out.push(j);
        byName.set(j.name, j);
        if (req.global) globals.push(j);
      }
    }
    this.jobsCache = out;
    this.jobsByName = byName;
    this.globalJobs = globals;
    return out;
  }

  machines(): MachineRecord[] {
    return [...(this.snap?.machines.values() ?? [])];
  }

  stop(): void {
    this.follower.stop();
  }
}
