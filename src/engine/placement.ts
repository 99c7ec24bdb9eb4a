/**
 * The engine's in-memory view of the cluster during one scheduling pass (fleet `engine/state.go`
 * clusterState plus `agent.AgentState` per machine): which units sit on which machine, each
 * machine's load, and per-machine counters that answer "would this unit conflict here?" without
 * glob matching or walking the machine's units.
 *
 * Per machine it keeps, for the units on it (placed units and the Global units that run there):
 *   hits[p]  how many of them are matched by Conflicts= pattern p (of any unit);
 *   owns[p]  how many of them carry Conflicts= pattern p.
 * A unit U conflicts on a machine iff one of U's patterns has hits > 0 there, or one of the patterns
 * matching U's name has owns > 0 there. Updating costs O(patterns of U + patterns matching U).
 */
import type { MachineRecord } from '../registry/types.js';
import {
  compareNames,
  conflictBetween,
  replacePattern,
  type ConflictCause,
  type UnitRules,
} from './constraints.js';
import { LoadHeap } from './load-heap.js';
import type { RulesIndex } from './rules-index.js';
import type { SchedulerJob } from './types.js';

function bump(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n === 0) counts.delete(key);
  else counts.set(key, n);
}

export function rulesOf(job: SchedulerJob): UnitRules {
  return { name: job.name, conflicts: job.requirements.conflicts, replaces: job.requirements.replaces };
}

export class Placement {
  /** Machines sorted by ID: index order is the tie-break order. */
  readonly machines: readonly MachineRecord[];
  readonly indexOf = new Map<string, number>();
  /** Units on each machine (placed and Global): the least-loaded scheduler sorts on this. */
  readonly load: number[];
  /** Non-global units placed on each machine. */
  readonly placed: Set<string>[];
  /** Global units that run on each machine. */
  readonly globals: Set<string>[];
  /** Non-global unit → machine index. */
  readonly where = new Map<string, number>();
  /** Global unit → the machines it runs on. */
  readonly globalWhere = new Map<string, Set<number>>();

  private readonly hits: (Map<string, number> | undefined)[];
  private readonly owns: (Map<string, number> | undefined)[];
  private readonly replacers: (Set<string> | undefined)[];
  private readonly heap: LoadHeap;

  constructor(
    machines: readonly MachineRecord[],
    private readonly jobs: ReadonlyMap<string, SchedulerJob>,
    private readonly rules: RulesIndex,
  ) {
    this.machines = [...machines].sort((a, b) => compareNames(a.id, b.id));
    this.machines.forEach((m, i) => this.indexOf.set(m.id, i));
    const n = this.machines.length;
    this.load = new Array<number>(n).fill(0);
    this.placed = Array.from({ length: n }, () => new Set<string>());
    this.globals = Array.from({ length: n }, () => new Set<string>());
    this.hits = new Array<Map<string, number> | undefined>(n).fill(undefined);
    this.owns = new Array<Map<string, number> | undefined>(n).fill(undefined);
    this.replacers = new Array<Set<string> | undefined>(n).fill(undefined);
    this.heap = new LoadHeap(this.load);
  }

  /** The least-loaded machine of the whole cluster (lowest ID among equals). */
  leastLoaded(): number | undefined {
    return this.heap.peek();
  }

  machineID(m: number): string {
    const rec = this.machines[m];
    if (rec === undefined) throw new RangeError(`no machine at index ${m}`);
    return rec.id;
  }

  private count(job: SchedulerJob, m: number, by: 1 | -1): void {
    this.load[m] = (this.load[m] ?? 0) + by;
    this.heap.update(m);
    const matching = this.rules.conflictPatternsMatching(job.name);
    if (matching.length > 0) {
      const hits = (this.hits[m] ??= new Map<string, number>());
      for (const p of matching) bump(hits, p, by);
    }
    const own = job.requirements.conflicts;
    if (own.length > 0) {
      const owns = (this.owns[m] ??= new Map<string, number>());
      for (const p of own) bump(owns, p, by);
    }
    if (job.requirements.replaces.length > 0) {
      const set = (this.replacers[m] ??= new Set<string>());
      if (by > 0) set.add(job.name);
      else set.delete(job.name);
    }
  }

  /** Put a non-global unit on machine `m`. */
  place(job: SchedulerJob, m: number): void {
    this.where.set(job.name, m);
    this.placed[m]?.add(job.name);
    this.count(job, m, 1);
  }

  /** Take a non-global unit off its machine; returns the machine index it was on. */
  remove(job: SchedulerJob): number | undefined {
    const m = this.where.get(job.name);
    if (m === undefined) return undefined;
    this.where.delete(job.name);
    this.placed[m]?.delete(job.name);
    this.count(job, m, -1);
    return m;
  }

  /** Record that Global unit `job` runs on machine `m` (it counts in load and conflicts). */
  addGlobal(job: SchedulerJob, m: number): void {
    this.globals[m]?.add(job.name);
    let set = this.globalWhere.get(job.name);
    if (set === undefined) this.globalWhere.set(job.name, (set = new Set()));
    set.add(m);
    this.count(job, m, 1);
  }

  /** True when `job` shares a unit with a unit on machine `m` (symmetric Conflicts=). */
  conflictsOn(job: SchedulerJob, m: number): boolean {
    const hits = this.hits[m];
    if (hits !== undefined) {
      for (const p of job.requirements.conflicts) if ((hits.get(p) ?? 0) > 0) return true;
    }
    const owns = this.owns[m];
    if (owns !== undefined) {
      for (const p of this.rules.conflictPatternsMatching(job.name)) if ((owns.get(p) ?? 0) > 0) return true;
    }
    return false;
  }

  /** The unit on `m` that `job` conflicts with, lowest name first (slow; for reasons only). */
  conflictOn(job: SchedulerJob, m: number): { other: string; cause: ConflictCause } | undefined {
    const mine = rulesOf(job);
    const names = [...(this.placed[m] ?? []), ...(this.globals[m] ?? [])].sort(compareNames);
    for (const other of names) {
      const o = this.jobs.get(other);
      if (o === undefined) continue;
      const cause = conflictBetween(mine, rulesOf(o), this.rules.match);
      if (cause !== undefined) return { other, cause };
    }
    return undefined;
  }

  /** The unit on `m` whose Replaces= evicts `job` from there, if any (circular replaces ignored). */
  replacedOn(job: SchedulerJob, m: number): { by: string; pattern: string } | undefined {
    if (!this.rules.isReplaceTarget(job.name)) return undefined;
    const replacers = this.replacers[m];
    if (replacers === undefined || replacers.size === 0) return undefined;
    const target = rulesOf(job);
    for (const by of [...replacers].sort(compareNames)) {
      const r = this.jobs.get(by);
      if (r === undefined) continue;
      const pattern = replacePattern(rulesOf(r), target, this.rules.match);
      if (pattern !== undefined) return { by, pattern };
    }
    return undefined;
  }

  /** The non-global units on `m` that `job`'s Replaces= evicts, in name order. */
  evictedBy(job: SchedulerJob, m: number): { victim: SchedulerJob; pattern: string }[] {
    if (job.requirements.replaces.length === 0) return [];
    const out: { victim: SchedulerJob; pattern: string }[] = [];
    const me = rulesOf(job);
    for (const name of [...(this.placed[m] ?? [])].sort(compareNames)) {
      const victim = this.jobs.get(name);
      if (victim === undefined) continue;
      const pattern = replacePattern(me, rulesOf(victim), this.rules.match);
      if (pattern !== undefined) out.push({ victim, pattern });
    }
    return out;
  }
}
