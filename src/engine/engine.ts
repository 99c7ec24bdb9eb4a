/**
 * The engine runner: at most one per cluster is the leader, and only the leader schedules.
 *
 * Leadership is the `engine/leader` key bound to the leader machine's *presence lease*: if the
 * machine dies, its presence and its leadership vanish together after agent_ttl, and another engine
 * takes over at once (fleet had a separate 10 s lease, so losing the leader's machine cost ~12 s more).
 * Every schedule write is a txn that compares the leader key's modRevision (a LeaderGuard), so a
 * deposed leader cannot write.
 *
 * The leader plans on every relevant registry change (ClusterView events: jobs, schedules, machines,
 * bodies) and on a safety-net interval, with the pure planner in scheduler.ts, and writes each plan
 * as guarded txns. One plan runs at a time; changes during a run coalesce into one more run.
 */
import type { ClusterView } from '../agent/cluster-view.js';
import type { LeaseKeeper } from '../registry/lease.js';
import type { LeaderGuard, Registry } from '../registry/registry.js';
import type { ScheduleRecord } from '../registry/types.js';
import type { Logger } from '../systemd/manager.js';
import { countDecision } from '../lib/metrics.js';
import { SerialRunner } from '../lib/runner.js';
import { planSchedule } from './scheduler.js';
import type { EngineDecision } from './types.js';

export interface EngineDeps {
  registry: Registry;
  view: ClusterView;
  lease: LeaseKeeper;
  machineID: string;
  log: Logger;
  /** Safety-net replan interval, ms. */
  intervalMs: number;
}

export interface EngineStats {
  leader: boolean;
  plans: number;
  decisions: number;
  lastPlanMs: number;
}

/** Collapse a plan into the final record per unit: a put (placed or unplaceable) or a delete. */
export function collapse(decisions: readonly EngineDecision[]): {
  puts: ScheduleRecord[];
  deletes: string[];
} {
  const last = new Map<string, ScheduleRecord | null>();
  for (const d of decisions) {
    switch (d.type) {
      case 'schedule':
        last.set(d.name, { name: d.name, machineID: d.machineID });
        break;
      case 'unschedulable':
        last.set(d.name, { name: d.name, reason: d.reason });
        break;
      case 'unschedule':
      case 'forget':
        last.set(d.name, null);
        break;
    }
  }
  const puts: ScheduleRecord[] = [];
  const deletes: string[] = [];
  for (const [name, rec] of last) {
    if (rec) puts.push(rec);
    else deletes.push(name);
  }
  return { puts, deletes };
}

export class Engine {
  private guard: LeaderGuard | undefined;
  private readonly runner: SerialRunner;
  private timer: NodeJS.Timeout | undefined;
  readonly stats: EngineStats = { leader: false, plans: 0, decisions: 0, lastPlanMs: 0 };

  constructor(private readonly d: EngineDeps) {
    this.runner = new SerialRunner(
      () => this.tick(),
      (err) => this.d.log.warn({ err: err.message }, 'engine pass failed'),
    );
  }

  start(): void {
    const relevant = (kinds: Set<string>) =>
      kinds.has('job') ||
      kinds.has('schedule') ||
      kinds.has('machine') ||
      kinds.has('body') ||
      kinds.has('leader');
    this.d.view.on('changed', (kinds) => {
      if (relevant(kinds)) this.trigger();
    });
    this.d.view.on('available', () => this.trigger());
    this.d.lease.on('granted', () => {
      this.guard = undefined; // a new lease: leadership (bound to the old one) is gone
      this.trigger();
    });
    this.timer = setInterval(() => this.trigger(), this.d.intervalMs);
    this.timer.unref();
    this.trigger();
  }

  get isLeader(): boolean {
    return this.guard !== undefined;
  }

  trigger(): void {
    this.runner.trigger();
  }

  private async ensureLeadership(): Promise<boolean> {
    const view = this.d.view;
    const leaseId = this.d.lease.id;
    if (!view.available || leaseId === undefined) return false;
    const leader = view.snap?.leader;
    if (this.guard && this.guard.lease === leaseId && leader?.machineID === this.d.machineID) return true;
    if (leader && leader.machineID !== this.d.machineID) {
      this.setLeader(undefined);
      return false;
    }
    this.setLeader(await this.d.registry.acquireLeadership(this.d.machineID, leaseId));
    return this.guard !== undefined;
  }

  private setLeader(g: LeaderGuard | undefined): void {
    const was = this.guard !== undefined;
    this.guard = g;
    this.stats.leader = g !== undefined;
    if (was !== (g !== undefined))
      this.d.log.info({ leader: g !== undefined }, g ? 'became engine leader' : 'not the engine leader');
  }

  private async tick(): Promise<void> {
    if (!(await this.ensureLeadership())) return;
    const view = this.d.view;
    const t0 = performance.now();
    const decisions = planSchedule({
      jobs: view.schedulerJobs(),
      machines: view.machines(),
      schedules: view.snap!.schedules,
    });
    this.stats.plans++;
    this.stats.lastPlanMs = performance.now() - t0;
    if (decisions.length === 0) return;
    for (const dcs of decisions) {
      countDecision(dcs.type);
      this.d.log.info(
        { unit: dcs.name, decision: dcs.type, reason: dcs.reason },
        `${dcs.type} ${dcs.name}: ${dcs.reason}`,
      );
    }
    const { puts, deletes } = collapse(decisions);
    const guard = this.guard!;
    const ok =
      (deletes.length === 0 || (await this.d.registry.clearSchedule(guard, deletes))) &&
      (puts.length === 0 || (await this.d.registry.writeSchedule(guard, puts)));
    this.stats.decisions += decisions.length;
    if (ok) {
      // Apply our own writes to the view now: a re-plan before their watch events arrive must not
      // see the old schedule (it would place the same units again, possibly elsewhere).
      view.applyLocalSchedule(puts, deletes);
    } else {
      // Leadership lost or a unit vanished meanwhile: re-check and re-plan from fresh state.
      this.setLeader(undefined);
      this.runner.rerun();
    }
  }

  async stop(resign: boolean): Promise<void> {
    clearInterval(this.timer);
    await this.runner.stop();
    if (resign && this.guard) await this.d.registry.resignLeadership(this.guard).catch(() => undefined);
  }
}
