/**
 * The engine's scheduler: a pure planner (fleet `engine/reconciler.go` calculateClusterTasks plus
 * `engine/scheduler.go` leastLoadedScheduler and `agent/state.go` AbleToRun). Submitted units,
 * live machines and the current schedule go in; a list of decisions, each with a human reason,
 * comes out. No I/O, no clock, no randomness.
 *
 * One pass:
 *   1. Unschedule (every placed unit, by rule):
 *      a. the unit was destroyed / is Global / has desired state inactive / its machine went away /
 *         MachineID or MachineMetadata no longer match the machine / the machine is unschedulable
 *         (draining before a reboot: nothing new goes there and its placed units move; Global
 *         units keep running on it);
 *      b. Conflicts: on each machine the units there (placed units plus the Global units whose
 *         metadata matches) are visited in name order and each one conflicting with one kept
 *         before it loses: a placed loser is unscheduled, a Global loser does not run there;
 *      c. Replaces: a unit whose machine holds a unit replacing it is evicted;
 *      d. MachineOf: a unit whose peers are no longer all on its machine is unscheduled, and so on
 *         along chains of followers.
 *   2. Schedule every unplaced unit whose desired state is not inactive, in name order but peers
 *      (MachineOf) before their followers, on the least-loaded machine able to run it (load counts
 *      placed and Global units; ties go to the lowest machine ID). Each placement updates the
 *      in-memory load, so a batch spreads. A placed unit with Replaces= evicts what it replaces on
 *      its machine at once, and the evicted unit is placed again in the same pass.
 *   A unit that cannot be placed gets an `unschedulable` decision with a specific reason (fleet
 *   only logged at debug level and `fleetctl start` hung, #559). The verdict is emitted only when
 *   it differs from the one on record, and a "blocked by a conflicting unit" reason is composed from
 *   the state at the end of the pass, which is what the next pass sees, so applying a plan and
 *   planning again yields an empty plan (one pass is a fixed point).
 *
 * Order of the output: phase-1 decisions sorted by unit name, then phase-2 decisions in the order
 * they were made (a Replaces= eviction follows the placement that caused it).
 *
 * Placement is sticky: a unit that may stay where it is stays, so a joining machine moves nothing.
 *
 * Deliberate differences from fleet v1.0 (each noted where it happens):
 * - Determinism: fleet visited units in Go map order (random); we visit in name order, so one input
 *   gives one plan.
 * - Peers first: a follower is scheduled after its MachineOf peers in the same pass, so a follower
 *   and the peer it follows move together instead of over two passes.
 * - Conflicts between placed units: fleet moved whichever unit it evaluated first (random); we move
 *   the one with the higher name, which is the one the agent does not run (the agent keeps the
 *   lower name), so no running unit is stopped to resolve it.
 * - Replaces: fleet moved the replaced unit to the least-loaded other machine without checking its
 *   own rules; we place it like any unit (its MachineID/metadata/peers/conflicts are honoured, and
 *   a machine running a unit that replaces it is not eligible).
 * - Replaces evicts only placed units: Global units cannot be evicted (they run everywhere).
 * - `forget` decisions clear stale "why not placed" records; fleet had no such records.
 *
 * Known simplification: which Global units run on a machine is settled once, in step 1b. If a
 * placed unit that kept a Global unit off its machine leaves in 1c/1d/2, the Global unit starts to
 * count there on the next pass (the agent starts it as soon as the other unit is gone).
 *
 * Cost: O(units × log units) sorting; O(global units × machines) for Global units; per unit placed
 * O(log machines) when it has no placement rules (a heap on load, `load-heap.ts`), otherwise
 * O(candidate machines) with O(1)-ish conflict checks via per-machine counters (`placement.ts`);
 * glob matching once per distinct pattern and unit name, memoised across passes
 * (`rules-index.ts`). 10,000 units on 1,000 machines plan in tens of milliseconds once warm.
 */
import type { ScheduleRecord } from '../registry/types.js';
import {
  compareNames,
  conflictBetween,
  describeConflict,
  formatMetadata,
  hasMetadata,
  machineIDMatches,
  metadataMatches,
  metadataSignature,
  selectConflictFree,
  shortMachineID,
} from './constraints.js';
import { Placement, rulesOf } from './placement.js';
import { RulesIndex } from './rules-index.js';
import type { EngineDecision, ScheduleInput, ScheduleSource, SchedulerJob } from './types.js';

/** Plan one scheduling pass. Pure: the same input always gives the same decisions. */
export function planSchedule(input: ScheduleInput): EngineDecision[] {
  return new SchedulePass(input).run();
}

function toRecordMap(schedules: ScheduleSource): Map<string, ScheduleRecord> {
  if (schedules instanceof Map)
    return new Map<string, ScheduleRecord>(schedules as ReadonlyMap<string, ScheduleRecord>);
  const out = new Map<string, ScheduleRecord>();
  for (const rec of schedules as readonly ScheduleRecord[]) out.set(rec.name, rec);
  return out;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Where a unit goes; or why it cannot go anywhere; or `blocked`: every candidate runs a conflicting
 * or replacing unit. The reason for `blocked` is written at the end of the pass (`explainBlocked`).
 */
type Outcome =
  | { machine: number; how: string }
  | { reason: string }
  | { blocked: readonly number[]; memo: string | undefined };

/** Why a placed unit leaves an unschedulable (draining) machine. */
const UNSCHEDULABLE = 'its machine is unschedulable (draining for a reboot)';

/** At most this many times may one unit be evicted (Replaces=) and placed again in one pass. */
const MAX_EVICTIONS = 2;

class SchedulePass {
  private readonly jobs = new Map<string, SchedulerJob>();
  private readonly records: Map<string, ScheduleRecord>;
  private readonly rules: RulesIndex;
  private readonly state: Placement;
  private readonly followers = new Map<string, string[]>();
  /** Phase 1 decisions (sorted by name at the end). */
  private readonly unscheduled: EngineDecision[] = [];
  /** Phase 2 decisions, in the order they were made. */
  private readonly placedOut: EngineDecision[] = [];
  private readonly candidateCache = new Map<string, { list: number[] } | { reason: string }>();
  private readonly evictions = new Map<string, number>();
  /** Blocked-everywhere verdicts by (candidates, conflict patterns); cleared when a unit leaves. */
  private readonly blocked = new Set<string>();
  /** Units found blocked everywhere, to be explained at the end of the pass. */
  private readonly blockedUnits: {
    decision: { type: 'unschedulable'; name: string; reason: string };
    job: SchedulerJob;
    list: readonly number[];
    /** Same signature, same verdict (see `choose`); undefined when the unit has its own. */
    memo: string | undefined;
  }[] = [];
  /** Units found on a MachineOf cycle → the cycle, for their followers' reasons. */
  private readonly cycles = new Map<string, string>();

  // Depth-first visit state for "peers before followers".
  private readonly done = new Set<string>();
  private readonly onPath: string[] = [];

  constructor(input: ScheduleInput) {
    // Duplicate names: the last record wins (the registry cannot hold duplicates).
    for (const j of input.jobs) this.jobs.set(j.name, j);
    this.records = toRecordMap(input.schedules);
    const active = [...this.jobs.values()].filter((j) => j.desiredState !== 'inactive');
    this.rules = new RulesIndex(active);
    this.state = new Placement(input.machines, this.jobs, this.rules);
    for (const j of active) {
      if (j.requirements.global) continue;
      for (const peer of j.requirements.machineOf) {
        const list = this.followers.get(peer);
        if (list === undefined) this.followers.set(peer, [j.name]);
        else list.push(j.name);
      }
    }
  }

  run(): EngineDecision[] {
    this.keepOrUnschedule();
    this.placeGlobalsAndResolveConflicts();
    this.evictReplaced();
    this.unscheduleStrayFollowers([...this.state.where.keys()].sort(compareNames));
    this.scheduleAll();
    this.explainBlocked();
    const first = [...this.unscheduled].sort((a, b) => compareNames(a.name, b.name));
    // An unschedulable verdict already on record is not written again: a steady cluster is quiet.
    const later = this.placedOut.filter((d) => {
      if (d.type !== 'unschedulable' || this.evictions.has(d.name)) return true;
      const rec = this.records.get(d.name);
      return !(rec !== undefined && rec.machineID === undefined && rec.reason === d.reason);
    });
    return [...first, ...later];
  }

  /**
   * Name what blocks each blocked unit, against the state at the end of the pass: that is the state
   * the next pass sees when it reaches the unit, so the reason is the same next time and is not
   * rewritten every pass (a reason taken mid-pass would name whatever was least loaded then).
   */
  private explainBlocked(): void {
    // The state no longer changes here, so units with one blocking signature share one reason.
    const explained = new Map<string, string>();
    for (const { decision, job, list, memo } of this.blockedUnits) {
      const known = memo === undefined ? undefined : explained.get(memo);
      if (known !== undefined) {
        decision.reason = known;
        continue;
      }
      decision.reason =
        this.leastLoaded(job, list) === undefined
          ? this.blockedReason(job, list)
          : 'a conflicting unit left its machine during this pass; placement is retried on the next pass';
      if (memo !== undefined) explained.set(memo, decision.reason);
    }
  }

  // ---- phase 1 ------------------------------------------------------------------------------

  /** 1a: rules that concern one unit and its machine only. */
  private keepOrUnschedule(): void {
    for (const name of [...this.records.keys()].sort(compareNames)) {
      const rec = this.records.get(name);
      if (rec === undefined) continue;
      const job = this.jobs.get(name);
      if (rec.machineID === undefined) {
        const stale = this.staleReason(job);
        if (stale !== undefined) this.unscheduled.push({ type: 'forget', name, reason: stale });
        continue;
      }
      const why =
        job === undefined
          ? this.staleReason(job)
          : (this.staleReason(job) ?? this.misfit(job, rec.machineID));
      const m = this.state.indexOf.get(rec.machineID);
      if (why !== undefined || job === undefined || m === undefined) {
        const reason = why ?? `target machine ${shortMachineID(rec.machineID)} went away`;
        this.unscheduled.push({ type: 'unschedule', name, machineID: rec.machineID, reason });
        continue;
      }
      this.state.place(job, m);
    }
  }

  /** Why a schedule record for this unit should not exist at all. */
  private staleReason(job: SchedulerJob | undefined): string | undefined {
    if (job === undefined) return 'unit no longer exists';
    if (job.requirements.global)
      return 'Global units run on every matching machine; the engine does not place them';
    if (job.desiredState === 'inactive') return 'desired state is inactive';
    return undefined;
  }

  /** Why `job` may no longer stay on `machineID`, ignoring other units. */
  private misfit(job: SchedulerJob, machineID: string): string | undefined {
    const m = this.state.indexOf.get(machineID);
    if (m === undefined) return `target machine ${shortMachineID(machineID)} went away`;
    const req = job.requirements;
    if (req.machineID !== undefined && !machineIDMatches(req.machineID, machineID)) {
      return `MachineID ${req.machineID} does not match this machine`;
    }
    const machine = this.state.machines[m];
    if (machine?.unschedulable === true) return UNSCHEDULABLE;
    if (machine !== undefined && !metadataMatches(req.metadata, machine.metadata)) {
      return `MachineMetadata ${formatMetadata(req.metadata)} no longer matches`;
    }
    return undefined;
  }

  /**
   * 1b: decide which Global units run on each machine and resolve conflicts among the units there,
   * with the agent's rule (name order, the lower name wins). Only units that carry Conflicts= or are
   * matched by one take part; the others never conflict.
   */
  private placeGlobalsAndResolveConflicts(): void {
    const globals = [...this.jobs.values()]
      .filter((j) => j.requirements.global && j.desiredState !== 'inactive')
      .sort((a, b) => compareNames(a.name, b.name));
    const n = this.state.machines.length;
    for (let m = 0; m < n; m++) {
      const machine = this.state.machines[m];
      if (machine === undefined) continue;
      const here = globals.filter((g) => metadataMatches(g.requirements.metadata, machine.metadata));
      const contenders: SchedulerJob[] = [];
      for (const g of here) if (this.conflictRelevant(g)) contenders.push(g);
      for (const name of this.state.placed[m] ?? []) {
        const j = this.jobs.get(name);
        if (j !== undefined && this.conflictRelevant(j)) contenders.push(j);
      }
      const losers = new Set<string>();
      if (contenders.length > 1) {
        const { dropped } = selectConflictFree(contenders, (a, b) =>
          conflictBetween(rulesOf(a), rulesOf(b), this.rules.match),
        );
        for (const { unit, winner, cause } of dropped) {
          losers.add(unit.name);
          if (unit.requirements.global) continue;
          const from = this.state.remove(unit);
          if (from === undefined) continue;
          this.unscheduled.push({
            type: 'unschedule',
            name: unit.name,
            machineID: this.state.machineID(from),
            reason: `conflicts with ${winner.name} on this machine (${describeConflict(unit.name, cause)})`,
          });
        }
      }
      for (const g of here) if (!losers.has(g.name)) this.state.addGlobal(g, m);
    }
  }

  private conflictRelevant(job: SchedulerJob): boolean {
    return job.requirements.conflicts.length > 0 || this.rules.conflictPatternsMatching(job.name).length > 0;
  }

  /** 1c: a unit sharing its machine with a unit that replaces it is evicted. */
  private evictReplaced(): void {
    for (const name of [...this.state.where.keys()].sort(compareNames)) {
      const job = this.jobs.get(name);
      const m = this.state.where.get(name);
      if (job === undefined || m === undefined) continue;
      const by = this.state.replacedOn(job, m);
      if (by === undefined) continue;
      this.state.remove(job);
      this.unscheduled.push({
        type: 'unschedule',
        name,
        machineID: this.state.machineID(m),
        reason: `replaced by ${by.by} (Replaces=${by.pattern})`,
      });
    }
  }

  /**
   * 1d: unschedule placed units whose MachineOf peers are not all on their machine, following
   * chains (a follower of an unscheduled follower is checked again). Returns the units unscheduled.
   */
  private unscheduleStrayFollowers(start: readonly string[], out = this.unscheduled): string[] {
    const moved: string[] = [];
    const queue = [...start];
    for (let i = 0; i < queue.length; i++) {
      const name = queue[i] as string;
      const job = this.jobs.get(name);
      const m = this.state.where.get(name);
      if (job === undefined || m === undefined || job.requirements.machineOf.length === 0) continue;
      const stray = job.requirements.machineOf.find((p) => !this.peerOn(p, m));
      if (stray === undefined) continue;
      this.state.remove(job);
      moved.push(name);
      out.push({
        type: 'unschedule',
        name,
        machineID: this.state.machineID(m),
        reason: `peer ${stray} (MachineOf) is no longer on this machine`,
      });
      for (const f of this.followers.get(name) ?? []) if (this.state.where.has(f)) queue.push(f);
    }
    return moved;
  }

  private peerOn(peer: string, m: number): boolean {
    return this.state.where.get(peer) === m || (this.state.globalWhere.get(peer)?.has(m) ?? false);
  }

  // ---- phase 2 ------------------------------------------------------------------------------

  private scheduleAll(): void {
    let pending = [...this.jobs.values()]
      .filter((j) => this.wantsPlacement(j))
      .map((j) => j.name)
      .sort(compareNames);
    // Units evicted by Replaces= (and their followers) come back for another round.
    while (pending.length > 0) {
      const again: string[] = [];
      for (const name of pending) this.visit(name, again);
      pending = [...new Set(again)].filter((n) => !this.state.where.has(n)).sort(compareNames);
      for (const n of pending) this.done.delete(n);
    }
  }

  private wantsPlacement(job: SchedulerJob): boolean {
    return !job.requirements.global && job.desiredState !== 'inactive' && !this.state.where.has(job.name);
  }

  /** Depth-first: place the unplaced MachineOf peers of `root` before `root` itself. */
  private visit(root: string, again: string[]): void {
    type Frame = { job: SchedulerJob; next: number };
    const rootJob = this.jobs.get(root);
    if (rootJob === undefined || this.done.has(root) || !this.wantsPlacement(rootJob)) return;
    if (rootJob.requirements.machineOf.length === 0) {
      this.decide(rootJob, again);
      this.done.add(root);
      return;
    }
    const stack: Frame[] = [{ job: rootJob, next: 0 }];
    this.onPath.push(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as Frame;
      const peers = top.job.requirements.machineOf;
      if (top.next < peers.length) {
        const peer = peers[top.next++] as string;
        const pj = this.jobs.get(peer);
        if (
          pj !== undefined &&
          !this.done.has(peer) &&
          !this.onPath.includes(peer) &&
          this.wantsPlacement(pj)
        ) {
          stack.push({ job: pj, next: 0 });
          this.onPath.push(peer);
        }
        continue;
      }
      this.decide(top.job, again);
      this.done.add(top.job.name);
      stack.pop();
      this.onPath.pop();
    }
  }

  private decide(job: SchedulerJob, again: string[]): void {
    const outcome = this.choose(job);
    if ('reason' in outcome) {
      this.placedOut.push({ type: 'unschedulable', name: job.name, reason: outcome.reason });
      return;
    }
    if ('blocked' in outcome) {
      const decision = { type: 'unschedulable' as const, name: job.name, reason: '' };
      this.placedOut.push(decision);
      this.blockedUnits.push({ decision, job, list: outcome.blocked, memo: outcome.memo });
      return;
    }
    const m = outcome.machine;
    this.state.place(job, m);
    this.placedOut.push({
      type: 'schedule',
      name: job.name,
      machineID: this.state.machineID(m),
      reason: `desired state is ${job.desiredState}: ${outcome.how}`,
    });
    this.evictFrom(job, m, again);
  }

  /** A unit with Replaces= just placed on `m` evicts what it replaces there, now. */
  private evictFrom(job: SchedulerJob, m: number, again: string[]): void {
    for (const { victim, pattern } of this.state.evictedBy(job, m)) {
      this.state.remove(victim);
      this.blocked.clear();
      this.placedOut.push({
        type: 'unschedule',
        name: victim.name,
        machineID: this.state.machineID(m),
        reason: `replaced by ${job.name} (Replaces=${pattern})`,
      });
      const moved = [
        victim.name,
        ...this.unscheduleStrayFollowers(this.followers.get(victim.name) ?? [], this.placedOut),
      ];
      for (const name of moved) {
        const count = (this.evictions.get(name) ?? 0) + 1;
        this.evictions.set(name, count);
        if (count <= MAX_EVICTIONS) {
          again.push(name);
        } else {
          this.placedOut.push({
            type: 'unschedulable',
            name,
            reason: `evicted ${count} times by Replaces= in one pass; placement is retried on the next pass`,
          });
        }
      }
    }
  }

  /** Where `job` goes, or why it cannot go anywhere. */
  private choose(job: SchedulerJob): Outcome {
    const n = this.state.machines.length;
    if (n === 0) return { reason: 'no machines in the cluster' };
    const req = job.requirements;
    const base = this.candidates(job);
    if ('reason' in base) return base;
    let list = base.list;
    let how: string;
    if (req.machineOf.length > 0) {
      const restricted = this.followPeers(job, list);
      if ('reason' in restricted) return restricted;
      list = restricted.list;
      how = `with ${req.machineOf.length === 1 ? 'its peer' : 'its peers'} ${req.machineOf.join(', ')} (MachineOf)`;
    } else if (req.machineID !== undefined) {
      how = `MachineID ${req.machineID}`;
    } else {
      how = '';
    }
    // Counters only grow while units are being placed, so a unit blocked everywhere stays blocked
    // for every later unit with the same candidates and the same conflict patterns (1,000s of
    // instances of one template on a full cluster): remember the verdict until something leaves.
    const memo =
      req.machineOf.length === 0 && !this.rules.isReplaceTarget(job.name) && this.conflictRelevant(job)
        ? `${this.candidateKey(job)}\u0003${req.conflicts.join('\u0001')}\u0003${this.rules.conflictPatternsMatching(job.name).join('\u0001')}`
        : undefined;
    if (memo !== undefined && this.blocked.has(memo)) return { blocked: list, memo };
    const best = this.leastLoaded(job, list);
    if (best === undefined) {
      if (memo !== undefined) this.blocked.add(memo);
      return { blocked: list, memo };
    }
    if (how === '') how = `least-loaded eligible machine (${plural(this.state.load[best] ?? 0, 'unit')})`;
    return { machine: best, how };
  }

  /** Machines passing MachineID and MachineMetadata (cached per distinct requirement). */
  private candidates(job: SchedulerJob): { list: number[] } | { reason: string } {
    const req = job.requirements;
    const key = this.candidateKey(job);
    const cached = this.candidateCache.get(key);
    if (cached !== undefined) return cached;
    const machines = this.state.machines;
    let list: number[] = [];
    for (let m = 0; m < machines.length; m++) if (machines[m]?.unschedulable !== true) list.push(m);
    let result: { list: number[] } | { reason: string } = { list };
    if (req.machineID !== undefined) {
      const wanted = req.machineID;
      list = list.filter((m) => machineIDMatches(wanted, machines[m]?.id ?? ''));
      if (list.length === 0) {
        const draining = machines.some((m) => m.unschedulable === true && machineIDMatches(wanted, m.id));
        result = {
          reason: draining
            ? `machine ${wanted} (MachineID) is unschedulable (draining for a reboot)`
            : `MachineID ${wanted} matches no machine`,
        };
      }
    } else if (list.length === 0) {
      result = { reason: 'every machine is unschedulable (draining for a reboot)' };
    }
    if (!('reason' in result) && hasMetadata(req.metadata)) {
      const matching = list.filter((m) => metadataMatches(req.metadata, machines[m]?.metadata ?? {}));
      if (matching.length === 0) {
        const what = `MachineMetadata ${formatMetadata(req.metadata)}`;
        result =
          req.machineID !== undefined
            ? { reason: `machine ${req.machineID} (MachineID) does not match ${what}` }
            : { reason: `no machine matches ${what}` };
      } else {
        list = matching;
      }
    }
    if (!('reason' in result)) result = { list };
    this.candidateCache.set(key, result);
    return result;
  }

  /** Most units name no machine and no metadata: they skip building a signature. */
  private candidateKey(job: SchedulerJob): string {
    const req = job.requirements;
    if (req.machineID === undefined && !hasMetadata(req.metadata)) return '';
    return `${req.machineID ?? ''}\u0002${metadataSignature(req.metadata)}`;
  }

  private baseAllows(job: SchedulerJob, m: number): boolean {
    const machine = this.state.machines[m];
    if (machine === undefined || machine.unschedulable === true) return false;
    const req = job.requirements;
    if (req.machineID !== undefined && !machineIDMatches(req.machineID, machine.id)) return false;
    return metadataMatches(req.metadata, machine.metadata);
  }

  /** Restrict `list` to the machines where every MachineOf peer is (fleet `unitScheduled`). */
  private followPeers(job: SchedulerJob, list: readonly number[]): { list: number[] } | { reason: string } {
    let allowed: number[] | undefined;
    let previous: string | undefined;
    for (const peer of job.requirements.machineOf) {
      const where = this.peerMachines(peer);
      if ('reason' in where) return where;
      const eligible = where.machines.filter((m) => this.baseAllows(job, m));
      if (eligible.length === 0) return { reason: this.peerMismatch(job, peer, where.machines) };
      const next: number[] = allowed === undefined ? eligible : allowed.filter((m) => eligible.includes(m));
      if (next.length === 0) {
        return { reason: `peers ${previous ?? ''} and ${peer} (MachineOf) are on different machines` };
      }
      allowed = next;
      previous = peer;
    }
    const out = (allowed ?? [...list]).sort((a, b) => a - b);
    return { list: out };
  }

  /** The machines a peer is on, or why it is on none. */
  private peerMachines(peer: string): { machines: number[] } | { reason: string } {
    const pj = this.jobs.get(peer);
    const not = `peer ${peer} (MachineOf) is not scheduled`;
    if (pj === undefined) return { reason: `${not}: no such unit` };
    if (pj.desiredState === 'inactive') return { reason: `${not}: its desired state is inactive` };
    if (pj.requirements.global) {
      const on = [...(this.state.globalWhere.get(peer) ?? [])];
      if (on.length === 0) return { reason: `${not}: it is a Global unit that runs on no machine` };
      return { machines: on };
    }
    const m = this.state.where.get(peer);
    if (m !== undefined) return { machines: [m] };
    const at = this.onPath.indexOf(peer);
    if (at !== -1) {
      // A two-way (or longer) MachineOf loop never resolves (fleet documents the deadlock).
      const members = this.onPath.slice(at);
      const cycle = `MachineOf cycle ${[...members, peer].join(' → ')}`;
      for (const name of members) this.cycles.set(name, cycle);
    }
    const cycle = this.cycles.get(peer);
    return { reason: cycle === undefined ? not : `${not}: ${cycle}` };
  }

  /** The peer runs only on machines that fail the unit's own MachineID/MachineMetadata. */
  private peerMismatch(job: SchedulerJob, peer: string, machines: readonly number[]): string {
    const req = job.requirements;
    const rules: string[] = [];
    if (req.machineID !== undefined) rules.push(`MachineID ${req.machineID}`);
    if (hasMetadata(req.metadata)) rules.push(`MachineMetadata ${formatMetadata(req.metadata)}`);
    const what = rules.join(' and ');
    const only = machines[0];
    if (machines.length === 1 && only !== undefined) {
      return `peer ${peer} (MachineOf) is on machine ${shortMachineID(this.state.machineID(only))}, which does not match ${what}`;
    }
    return `peer ${peer} (MachineOf) runs on no machine matching ${what}`;
  }

  /**
   * The least-loaded machine of `list` (ascending index = ascending machine ID, so a strict `<`
   * keeps the lowest ID among equals) that `job` may share with the units already there.
   * Conflict/replace checks run only for units taking part in such rules, and only on a machine
   * that would beat the best one so far.
   */
  private leastLoaded(job: SchedulerJob, list: readonly number[]): number | undefined {
    const load = this.state.load;
    const check = this.conflictRelevant(job) || this.rules.isReplaceTarget(job.name);
    // The whole cluster and nothing to check: the heap knows the answer.
    if (!check && list.length === this.state.machines.length) return this.state.leastLoaded();
    let best: number | undefined;
    let bestLoad = Infinity;
    for (const m of list) {
      const l = load[m] ?? 0;
      if (l >= bestLoad) continue;
      if (check && (this.state.conflictsOn(job, m) || this.state.replacedOn(job, m) !== undefined)) continue;
      best = m;
      bestLoad = l;
      if (l === 0) break;
    }
    return best;
  }

  /** Every machine in `list` is blocked by a conflict or a replacement: say which, concretely. */
  private blockedReason(job: SchedulerJob, list: readonly number[]): string {
    let first = list[0] ?? 0;
    for (const m of list) if ((this.state.load[m] ?? 0) < (this.state.load[first] ?? 0)) first = m;
    const where =
      list.length === 1 ? `machine ${shortMachineID(this.state.machineID(first))}` : 'every matching machine';
    const c = this.state.conflictOn(job, first);
    if (c !== undefined) {
      if (list.length === 1)
        return `${where} runs a conflicting unit, ${c.other} (${describeConflict(job.name, c.cause)})`;
      const detail =
        c.cause.owner === job.name
          ? `Conflicts=${job.requirements.conflicts.join(' ')}`
          : describeConflict(job.name, c.cause);
      return `${where} runs a conflicting unit (${detail})`;
    }
    const r = this.state.replacedOn(job, first);
    if (r !== undefined) return `${where} runs a unit that replaces it (${r.by} has Replaces=${r.pattern})`;
    return `${where} refused it`;
  }
}
