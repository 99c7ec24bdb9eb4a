/**
 * A unit as fleet's v1 API shows it (`ApiUnit`: name, options, desiredState, currentState, machineID,
 * flotilla's `reason`), built from registry records; shared by the fleet v1 API and the batch API.
 */
import type { Snapshot } from '../registry/registry.js';
import type { DesiredState, JobRecord } from '../registry/types.js';
import { UnitFile, fleetRequirements, type UnitOption } from '../unit/index.js';
import { optionsFor } from './redact.js';
import type { Role } from './roles.js';

export interface ApiUnit {
  name: string;
  options?: UnitOption[];
  desiredState?: DesiredState;
  currentState?: DesiredState;
  machineID?: string;
  /** flotilla: why the unit is not placed. */
  reason?: string;
}

/** Parsed bodies by hash: bodies are immutable, so the cache never goes stale. */
const parsed = new Map<string, { unit: UnitFile; global: boolean }>();
function parseBody(name: string, hash: string, body: string): { unit: UnitFile; global: boolean } {
  let p = parsed.get(hash);
  if (!p) {
    const unit = UnitFile.parse(body);
    let global = false;
    try {
      global = fleetRequirements(name, unit).global;
    } catch {
      /* stored before validation existed: treat as not global */
    }
    p = { unit, global };
    if (parsed.size > 20_000) parsed.clear();
    parsed.set(hash, p);
  }
  return p;
}

export type StateView = Pick<Snapshot, 'schedules' | 'states'>;

export function currentState(snap: StateView, name: string, global: boolean): DesiredState {
  if (global) return 'inactive';
  const target = snap.schedules.get(name)?.machineID;
  if (!target) return 'inactive';
  const st = snap.states.get(name)?.get(target);
  if (!st) return 'inactive';
  return st.jobState ?? 'loaded';
}

export function toApiUnit(
  snap: StateView,
  job: JobRecord,
  body: string | undefined,
  roles: ReadonlySet<Role> | undefined,
): ApiUnit {
  const out: ApiUnit = { name: job.name, desiredState: job.desiredState };
  let global = false;
  if (body !== undefined) {
    const p = parseBody(job.name, job.hash, body);
    global = p.global;
    // Environment= values only for the operator (redact.ts).
    out.options = optionsFor(
      p.unit.options.map((o) => ({ name: o.name, section: o.section, value: o.value })),
      roles,
    );
  }
  out.currentState = currentState(snap, job.name, global);
  const sched = snap.schedules.get(job.name);
  if (sched?.machineID) out.machineID = sched.machineID;
  if (sched?.reason && !sched.machineID) out.reason = sched.reason;
  return out;
}
