/**
 * Which units belong on one machine (fleet `agent/reconcile.go` desiredAgentState): the non-global
 * units the engine scheduled here, plus the Global units whose MachineMetadata this machine
 * matches, minus any unit that conflicts with one chosen before it, visiting in name order, so of
 * two conflicting units the lower name wins (fleet TestScheduleGlobalConflicts). Pure.
 *
 * Units whose desired state is inactive are returned too (so `planAgent` can say why it unloads
 * them) but take no part in conflicts: they do not run.
 */
import {
  GlobCache,
  compareNames,
  conflictBetween,
  describeConflict,
  formatMetadata,
  metadataMatches,
  selectConflictFree,
} from '../engine/constraints.js';
import type { ScheduleSource, SchedulerJob } from '../engine/types.js';
import type { MachineRecord, ScheduleRecord } from '../registry/types.js';

export interface DesiredUnitsInput<J extends SchedulerJob> {
  machine: Pick<MachineRecord, 'id' | 'metadata'>;
  /** Every submitted unit. */
  jobs: readonly J[];
  schedules: ScheduleSource;
}

export interface DesiredUnits<J extends SchedulerJob> {
  /** The units that belong here, in name order. */
  units: J[];
  /** Units addressed to this machine that will not run here, with why (for logs). */
  excluded: { name: string; reason: string }[];
}

function scheduledHere(schedules: ScheduleSource, machineID: string): Set<string> {
  const out = new Set<string>();
  const records: Iterable<ScheduleRecord> =
    schedules instanceof Map ? schedules.values() : (schedules as readonly ScheduleRecord[]);
  for (const rec of records) if (rec.machineID === machineID) out.add(rec.name);
  return out;
}

export function planDesiredUnits<J extends SchedulerJob>(input: DesiredUnitsInput<J>): DesiredUnits<J> {
  const here = scheduledHere(input.schedules, input.machine.id);
  const candidates: J[] = [];
  const excluded: { name: string; reason: string }[] = [];
  for (const job of input.jobs) {
    const req = job.requirements;
    if (!req.global) {
      if (here.has(job.name)) candidates.push(job);
    } else if (metadataMatches(req.metadata, input.machine.metadata)) {
      candidates.push(job);
    } else if (job.desiredState !== 'inactive') {
      excluded.push({
        name: job.name,
        reason: `Global unit does not run here: MachineMetadata ${formatMetadata(req.metadata)} does not match`,
      });
    }
  }
  const glob = new GlobCache();
  const match = (p: string, n: string): boolean => glob.match(p, n);
  const running = candidates.filter((j) => j.desiredState !== 'inactive');
  const { dropped } = selectConflictFree(running, (a, b) =>
    conflictBetween(
      { name: a.name, conflicts: a.requirements.conflicts, replaces: [] },
      { name: b.name, conflicts: b.requirements.conflicts, replaces: [] },
      match,
    ),
  );
  const losers = new Set<string>();
  for (const { unit, winner, cause } of dropped) {
    losers.add(unit.name);
    excluded.push({
      name: unit.name,
      reason: `conflicts with ${winner.name} on this machine (${describeConflict(unit.name, cause)}); the lower name wins`,
    });
  }
  return {
    units: candidates.filter((j) => !losers.has(j.name)).sort((a, b) => compareNames(a.name, b.name)),
    excluded: excluded.sort((a, b) => compareNames(a.name, b.name)),
  };
}
