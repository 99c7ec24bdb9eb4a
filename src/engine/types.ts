/**
 * What the engine's scheduler reads and what it decides. Plain data: the planner (`scheduler.ts`)
 * is pure, and an executor (written separately) turns each decision into one registry write.
 */
import type { MachineRecord, ScheduleRecord, SchedulerJob } from '../registry/types.js';

// A submitted unit with its parsed [X-Fleet] rules is a registry read-model (the cluster view
// builds it); the engine reads it.
export type { PlacementRequirements, SchedulerJob } from '../registry/types.js';

/** The engine's schedule records, as a map keyed by unit name or as a list. */
export type ScheduleSource = ReadonlyMap<string, ScheduleRecord> | readonly ScheduleRecord[];

export interface ScheduleInput {
  /** Every submitted unit (any desired state, Global ones included: they count in machine load). */
  jobs: readonly SchedulerJob[];
  /** Machines that are alive now (their registry key exists). */
  machines: readonly MachineRecord[];
  /** The current schedule records. */
  schedules: ScheduleSource;
}

/**
 * One change to the schedule. Every decision names the unit and carries a human reason meant for
 * logs and for `list-unit-files`/`status`.
 *
 * - `schedule`: place the unit (create `schedule/<name>` with `machineID`, only if no machine is
 *   recorded: a CAS create).
 * - `unschedule`: take the unit off `machineID` (CAS: only if the record still names that machine).
 *   It may be followed by a `schedule` (moved) or an `unschedulable` for the same unit in the same
 *   plan.
 * - `unschedulable`: the unit cannot be placed anywhere now; record `reason` without a machine.
 *   Emitted only when the recorded state differs (no record, a machine recorded, another reason), so
 *   a steady cluster produces an empty plan.
 * - `forget`: drop a schedule record that holds no machine and no longer means anything (the unit
 *   was destroyed, its desired state is inactive, or it is Global), so no stale reason is shown.
 */
export type EngineDecision =
  | { type: 'schedule'; name: string; machineID: string; reason: string }
  | { type: 'unschedule'; name: string; machineID: string; reason: string }
  | { type: 'unschedulable'; name: string; reason: string }
  | { type: 'forget'; name: string; reason: string };

export type EngineDecisionType = EngineDecision['type'];
