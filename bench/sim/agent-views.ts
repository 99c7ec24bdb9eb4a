/**
 * Per-agent views over ONE shared ClusterView, for simulating many machines in one process.
 *
 * Why: a real MachineAgent gets `changed` from its own machine's ClusterView on every registry
 * revision and then recomputes from the whole cluster (`view.schedulerJobs()` over every job, a scan
 * of every schedule and every unit state). On a real cluster each machine pays that on its own CPU;
 * simulated in one process, N agents pay it N times on ONE event loop for every revision, which
 * would measure the simulation instead of flotilla (1,000 agents × every revision × 10,000 units).
 * The cost of one unmodified agent is measured separately (the "witness" agent of
 * bench/cluster-scale.ts, wired to the shared ClusterView exactly like the daemon does).
 *
 * What this does instead, for each simulated agent: an `AgentView` that looks like a ClusterView to
 * MachineAgent (same members it uses: snap, available, schedulerJobs(), jobsFor(), schedulesOn(), statesOn(), body(), events `changed`
 * and `available`) but holds only what concerns that machine:
 *   - `snap.schedules`: the schedule records naming this machine;
 *   - `snap.states`: the unit states this machine published;
 *   - `schedulerJobs()`: the jobs scheduled here plus Global jobs (planDesiredUnits ignores every
 *     other job, so the agent's plan is the same as with the full view);
 *   - `changed` fires only when a watch batch touched one of those (the router looks at each batch
 *     through the counting store's `tap`, then routes when the shared view has applied it).
 * Everything else (jobs, bodies, availability) is read from the shared view, so there is still one
 * snapshot and one etcd watch for the whole process.
 *
 * Not routed (documented limits): `machine/*` and `engine/leader` changes (MachineAgent does not
 * read them); `unit/<hash>` bodies (content-addressed and always written in the same txn as the
 * job pointing at them, so the job's change routes them).
 */
import { EventEmitter } from 'node:events';
import type { ChangeKind, ClusterView, ClusterViewEvents } from '../../src/registry/cluster-view.js';
import type { PlacementRequirements, SchedulerJob } from '../../src/engine/types.js';
import type { WatchEvent } from '../../src/registry/kv.js';
import type { Snapshot } from '../../src/registry/registry.js';
import { KEYS, type JobRecord, type ScheduleRecord, type UnitStateRecord } from '../../src/registry/types.js';
import { UnitFile, fleetRequirements } from '../../src/unit/index.js';
import type { CountingKvStore } from './counting-store.js';

export class AgentView extends EventEmitter<ClusterViewEvents> {
  readonly schedules = new Map<string, ScheduleRecord>();
  readonly states = new Map<string, Map<string, UnitStateRecord>>();

  constructor(
    private readonly router: AgentViewRouter,
    private readonly shared: ClusterView,
    readonly machineID: string,
  ) {
    super();
  }

  get available(): boolean {
    return this.shared.available;
  }

  get revision(): number {
    return this.shared.revision;
  }

  get snap(): Snapshot | undefined {
    const s = this.shared.snap;
    if (!s) return undefined;
    const out: Snapshot = {
      revision: s.revision,
      jobs: s.jobs,
      machines: s.machines,
      bodies: s.bodies,
      schedules: this.schedules,
      states: this.states,
    };
    if (s.leader) out.leader = s.leader;
    return out;
  }

  body(job: JobRecord): string | undefined {
    return this.shared.body(job);
  }

  schedulerJobs(): SchedulerJob[] {
    const jobs = this.shared.snap?.jobs;
    if (!jobs) return [];
    const out: SchedulerJob[] = [];
    const add = (name: string) => {
      const job = jobs.get(name);
      if (!job) return;
      const req = this.router.requirements(job);
      if (req) out.push({ ...job, requirements: req });
    };
    for (const name of this.schedules.keys()) add(name);
    for (const name of this.router.globals) if (!this.schedules.has(name)) add(name);
    return out;
  }

  /** ClusterView's per-machine accessors: this view holds only this machine's records anyway. */
  jobsFor(_machineID: string): SchedulerJob[] {
    return this.schedulerJobs();
  }

  schedulesOn(_machineID: string): ScheduleRecord[] {
    return [...this.schedules.values()];
  }

  statesOn(machineID: string): ReadonlyMap<string, UnitStateRecord> {
    const out = new Map<string, UnitStateRecord>();
    for (const [name, byMachine] of this.states) {
      const r = byMachine.get(machineID);
      if (r) out.set(name, r);
    }
    return out;
  }

  /** The shape MachineAgent expects (it only uses the members above). */
  asClusterView(): ClusterView {
    return this as unknown as ClusterView;
  }
}

export class AgentViewRouter {
  private readonly views = new Map<string, AgentView>();
  /** Unit name → machine it is scheduled on, as the watch reported it. */
  private readonly owner = new Map<string, string>();
  readonly globals = new Set<string>();
  private readonly parsed = new Map<string, PlacementRequirements | null>();
  private pending: WatchEvent[] = [];
  /** `changed` events delivered to agent views, and shared-view events routed. */
  notifications = 0;
  routed = 0;
  routeMs = 0;

  constructor(
    private readonly shared: ClusterView,
    store: CountingKvStore,
  ) {
    store.tap = (batch) => {
      for (const e of batch.events) this.pending.push(e);
    };
    shared.on('changed', (kinds) => this.route(kinds));
    shared.on('available', (up) => {
      for (const v of this.views.values()) v.emit('available', up);
    });
  }

  view(machineID: string): AgentView {
    let v = this.views.get(machineID);
    if (!v) {
      v = new AgentView(this, this.shared, machineID);
      this.views.set(machineID, v);
      this.fill(v);
    }
    return v;
  }

  /** Parsed [X-Fleet] rules of a job (cached by name and hash, like ClusterView does). */
  requirements(job: JobRecord): PlacementRequirements | null | undefined {
    const key = `${job.name}\0${job.hash}`;
    let req = this.parsed.get(key);
    if (req === undefined) {
      const body = this.shared.body(job);
      if (body === undefined) return undefined;
      try {
        const { warnings: _w, ...r } = fleetRequirements(job.name, UnitFile.parse(body));
        req = r;
      } catch {
        req = null;
      }
      this.parsed.set(key, req);
    }
    return req;
  }

  /** Rebuild everything from the shared snapshot (start, or a resync after compaction). */
  private rebuild(): void {
    const snap = this.shared.snap;
    this.owner.clear();
    this.globals.clear();
    if (!snap) return;
    for (const [name, rec] of snap.schedules)
      if (rec.machineID !== undefined) this.owner.set(name, rec.machineID);
    for (const job of snap.jobs.values()) if (this.requirements(job)?.global) this.globals.add(job.name);
    for (const v of this.views.values()) this.fill(v);
  }

  private fill(v: AgentView): void {
    v.schedules.clear();
    v.states.clear();
    const snap = this.shared.snap;
    if (!snap) return;
    for (const [name, rec] of snap.schedules) if (rec.machineID === v.machineID) v.schedules.set(name, rec);
    for (const [name, byMachine] of snap.states) {
      const r = byMachine.get(v.machineID);
      if (r) v.states.set(name, new Map([[v.machineID, r]]));
    }
  }

  private route(kinds: Set<ChangeKind>): void {
    const t0 = performance.now();
    const events = this.pending;
    this.pending = [];
    const touched = new Set<string>();
    let all = false;
    if (events.length === 0) {
      // Not from a watch batch: the shared view read a fresh snapshot.
      this.rebuild();
      all = true;
    }
    for (const e of events) {
      const key = e.kv.key;
      const put = e.type === 'put';
      if (key.startsWith(KEYS.prefixes.schedule)) {
        const name = key.slice(KEYS.prefixes.schedule.length);
        const rec = put ? (JSON.parse(e.kv.value) as ScheduleRecord) : undefined;
        const was = this.owner.get(name);
        const now = rec?.machineID;
        if (was !== undefined && was !== now) {
          this.views.get(was)?.schedules.delete(name);
          touched.add(was);
        }
        if (now !== undefined && rec) {
          this.owner.set(name, now);
          this.views.get(now)?.schedules.set(name, rec);
          touched.add(now);
        } else this.owner.delete(name);
      } else if (key.startsWith(KEYS.prefixes.job)) {
        const name = key.slice(KEYS.prefixes.job.length);
        const m = this.owner.get(name);
        if (m !== undefined) touched.add(m);
        const job = this.shared.snap?.jobs.get(name);
        const global = job !== undefined && this.requirements(job)?.global === true;
        if (global || this.globals.has(name)) all = true;
        if (global) this.globals.add(name);
        else this.globals.delete(name);
      } else if (key.startsWith(KEYS.prefixes.state)) {
        const rest = key.slice(KEYS.prefixes.state.length);
        const slash = rest.lastIndexOf('/');
        const name = rest.slice(0, slash);
        const machine = rest.slice(slash + 1);
        const v = this.views.get(machine);
        if (v) {
          if (put) v.states.set(name, new Map([[machine, JSON.parse(e.kv.value) as UnitStateRecord]]));
          else v.states.delete(name);
          touched.add(machine);
        }
      }
    }
    this.routed += events.length;
    const targets = all ? [...this.views.values()] : [...touched].flatMap((m) => this.views.get(m) ?? []);
    this.routeMs += performance.now() - t0;
    for (const v of targets) {
      this.notifications++;
      v.emit('changed', kinds);
    }
  }
}
