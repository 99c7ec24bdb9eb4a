/**
 * `GET /flotilla/v1/snapshot`: the whole cluster in one response, for a client that then follows
 * `GET /flotilla/v1/events?since=<revision>` (the dashboard's first load):
 *
 *   {"revision":R,"machineID":…,"leader":"<id>"|absent,
 *    "units":[{"name","desiredState","currentState","machineID"?,"reason"?,"hash"}…],   (by name)
 *    "states":[{"name","machineID","hash","systemdLoadState","systemdActiveState",
 *               "systemdSubState","reason"?,"container"?,"pull"?}…],                    (by name, machine)
 *    "machines":[{"id","primaryIP","metadata"}…]}                                     (as fleet v1)
 *
 * Units, states and the leader are the agent's cluster view at revision R, read synchronously, so
 * they are exactly the state after the event lines up to R: nothing is lost or doubled when the
 * client follows `?since=R`. Units carry no `options` (the unit file: GET /fleet/v1/units/NAME);
 * the fields are fleet v1's. Machines (with dynamic metadata, which the view does not hold) are read
 * from the registry after that, at a revision ≥ R: any machine change after R is also a line the
 * client gets, and re-reads on. Cost: no registry read for units, one for machines (where fleet v1's
 * pages re-read the whole registry once per 100 units).
 */
import type { Snapshot } from '../registry/registry.js';
import type { SchedulerJob } from '../registry/types.js';
import {
  currentState,
  toApiUnitState,
  type ApiMachine,
  type ApiUnit,
  type ApiUnitState,
} from './fleet-v1.js';

/** What the snapshot needs of the cluster view (ClusterView). */
export interface SnapshotView {
  readonly revision: number;
  readonly snap: Snapshot | undefined;
  schedulerJobs(): readonly SchedulerJob[];
}

export interface ClusterSnapshot {
  revision: number;
  leader?: string;
  units: (ApiUnit & { hash: string })[];
  states: ApiUnitState[];
}

const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Units, states and leader of the view at its current revision (synchronous: one consistent cut). */
export function viewSnapshot(view: SnapshotView): ClusterSnapshot | undefined {
  const snap = view.snap;
  if (!snap) return undefined;
  const global = new Set<string>();
  for (const j of view.schedulerJobs()) if (j.requirements.global) global.add(j.name);
  const units: ClusterSnapshot['units'] = [];
  for (const job of snap.jobs.values()) {
    const u: ApiUnit & { hash: string } = {
      name: job.name,
      desiredState: job.desiredState,
      currentState: currentState(snap, job.name, global.has(job.name)),
      hash: job.hash,
    };
    const sched = snap.schedules.get(job.name);
    if (sched?.machineID) u.machineID = sched.machineID;
    else if (sched?.reason) u.reason = sched.reason;
    units.push(u);
  }
  units.sort(byName);
  const states: ApiUnitState[] = [];
  for (const [name, byMachine] of snap.states)
    for (const [machineID, s] of byMachine) states.push(toApiUnitState({ ...s, name, machineID }));
  states.sort((a, b) => byName(a, b) || (a.machineID < b.machineID ? -1 : a.machineID > b.machineID ? 1 : 0));
  return {
    revision: view.revision,
    ...(snap.leader?.machineID ? { leader: snap.leader.machineID } : {}),
    units,
    states,
  };
}

/** The view's machine records as fleet v1 shows them, without dynamic metadata (no registry). */
export function viewMachines(snap: Snapshot): ApiMachine[] {
  return [...snap.machines.values()]
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((m) => ({ id: m.id, primaryIP: m.publicIP, metadata: { ...m.metadata } }));
}
