/**
 * The agent's gauge values for /metrics, computed at scrape time from its cluster view (no registry
 * reads): units by current and desired state (current state as the fleet API derives it), this
 * machine's units by systemd ActiveState, machine count, and lease/leadership status.
 */
import type { ClusterView } from '../registry/cluster-view.js';
import type { GaugeValues } from '../lib/metrics.js';
import { DESIRED_STATES } from '../registry/types.js';
import { currentState } from './fleet-v1.js';

export interface GaugeDeps {
  view: ClusterView;
  machineID: string;
  lease: { readonly id: string | undefined; readonly lastRenewed: number; readonly ttl: number };
  engine?: { readonly isLeader: boolean } | undefined;
}

export function clusterGauges(d: GaugeDeps): GaugeValues | undefined {
  const snap = d.view.snap;
  if (!snap) return undefined;
  const zero = () => Object.fromEntries(DESIRED_STATES.map((s) => [s, 0])) as Record<string, number>;
  const byState = zero();
  const byDesired = zero();
  for (const j of d.view.schedulerJobs()) {
    const st = currentState(snap, j.name, j.requirements.global);
    byState[st] = (byState[st] ?? 0) + 1;
  }
  for (const j of snap.jobs.values()) byDesired[j.desiredState] = (byDesired[j.desiredState] ?? 0) + 1;
  const local: Record<string, number> = {};
  for (const byMachine of snap.states.values()) {
    const r = byMachine.get(d.machineID);
    if (r) local[r.activeState] = (local[r.activeState] ?? 0) + 1;
  }
  return {
    unitsByState: byState,
    unitsByDesiredState: byDesired,
    machineUnitsByActiveState: local,
    machines: snap.machines.size,
    registryAvailable: d.view.available,
    leaseHeld: d.lease.id !== undefined && Date.now() - d.lease.lastRenewed < d.lease.ttl * 1000,
    engineLeader: d.engine?.isLeader ?? false,
  };
}
