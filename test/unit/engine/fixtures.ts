/**
 * Builders for scheduler tests: jobs with [X-Fleet] rules, machines, schedule records, and a tiny
 * "dumb executor" that applies decisions to a schedule map so tests can run several passes.
 */
import type { EngineDecision, PlacementRequirements, SchedulerJob } from '../../../src/engine/types.js';
import type { DesiredState, MachineRecord, ScheduleRecord } from '../../../src/registry/types.js';

export interface JobOptions {
  state?: DesiredState;
  hash?: string;
  machineID?: string;
  machineOf?: string[];
  metadata?: Record<string, string[]>;
  conflicts?: string[];
  global?: boolean;
  replaces?: string[];
}

export function job(name: string, o: JobOptions = {}): SchedulerJob {
  const requirements: PlacementRequirements = {
    machineOf: o.machineOf ?? [],
    metadata: o.metadata ?? {},
    conflicts: o.conflicts ?? [],
    global: o.global ?? false,
    replaces: o.replaces ?? [],
  };
  if (o.machineID !== undefined) requirements.machineID = o.machineID;
  return { name, hash: o.hash ?? 'c0ffee', desiredState: o.state ?? 'launched', requirements };
}

export function machine(id: string, metadata: Record<string, string> = {}): MachineRecord {
  return { id, publicIP: '10.0.0.1', metadata, version: '0.1.0' };
}

/** `at('a.service', 'M1')` → placed; `at('a.service', undefined, 'why')` → unschedulable record. */
export function at(name: string, machineID?: string, reason?: string): ScheduleRecord {
  const rec: ScheduleRecord = { name };
  if (machineID !== undefined) rec.machineID = machineID;
  if (reason !== undefined) rec.reason = reason;
  return rec;
}

/** The registry side of the decisions, as the executor is meant to apply them. */
export function apply(records: Map<string, ScheduleRecord>, decisions: readonly EngineDecision[]): void {
  for (const d of decisions) {
    const rec = records.get(d.name);
    switch (d.type) {
      case 'schedule':
        if (rec?.machineID === undefined) records.set(d.name, { name: d.name, machineID: d.machineID });
        break;
      case 'unschedule':
        if (rec?.machineID === d.machineID) records.delete(d.name);
        break;
      case 'unschedulable':
        if (rec?.machineID === undefined) records.set(d.name, { name: d.name, reason: d.reason });
        break;
      case 'forget':
        if (rec !== undefined && rec.machineID === undefined) records.delete(d.name);
        break;
    }
  }
}

/** name → machine for placed units. */
export function placements(records: ReadonlyMap<string, ScheduleRecord>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, rec] of [...records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (rec.machineID !== undefined) out[name] = rec.machineID;
  }
  return out;
}

/** A small seeded PRNG (mulberry32) for shuffles that are the same on every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = out[i] as T;
    out[i] = out[j] as T;
    out[j] = tmp;
  }
  return out;
}
