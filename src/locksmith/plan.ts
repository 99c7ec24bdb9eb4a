/**
 * The reboot manager's planner: given what it observes, the one next step, with a reason. Pure (no
 * clock, no I/O): the manager (manager.ts) observes, asks, and executes.
 *
 * Order of concerns, as locksmithd had it, plus the drain:
 *   1. A lock this machine holds from before a reboot (its boot ID changed) is released once the
 *      machine is healthy again, and the machine becomes schedulable again.
 *   2. strategy off: nothing (a pending reboot is logged once).
 *   3. No reboot needed: nothing; a stale unschedulable flag (a drain given up) is cleared.
 *   4. Outside the reboot window: wait until it opens.
 *   5. With the lock (etcd-lock, or best-effort on a cluster): take it; `semaphore is at N` waits.
 *   6. Drain: mark the machine unschedulable; the engine moves its units.
 *   7. Reboot once every unit that was here runs elsewhere (or has nowhere to go), or once the drain
 *      timeout has passed (logged with the units still pending).
 */
import type { Strategy } from './config.js';

export interface Observed {
  strategy: Strategy;
  /** The registry is a cluster (etcd) rather than the embedded store. */
  cluster: boolean;
  needReboot: boolean;
  /** ms until the reboot window opens; 0 when open or when there is no window. */
  untilWindow: number;
  bootId: string;
  /** This machine's holder record, when it holds the lock. */
  holding?: { bootId?: string };
  /** The lock has a free slot (only read when this machine does not hold it). */
  available: boolean;
  /** Our machine record says unschedulable. */
  unschedulable: boolean;
  /** Agent ready and registered. */
  healthy: boolean;
  /** While draining: units that were here and do not run elsewhere yet. */
  pending: readonly string[];
  /** ms since the drain began (undefined when not draining). */
  drainingMs?: number;
  drainTimeoutMs: number;
}

export type Step =
  | { type: 'release'; reason: string }
  | { type: 'undrain'; reason: string }
  | { type: 'wait'; reason: string; ms?: number }
  | { type: 'lock'; reason: string }
  | { type: 'drain'; reason: string }
  | { type: 'reboot'; reason: string; timedOut: boolean };

export function usesLock(strategy: Strategy, cluster: boolean): boolean {
  return strategy === 'etcd-lock' || (strategy === 'best-effort' && cluster);
}

export function planStep(o: Observed): Step {
  const rebooted = o.holding !== undefined && o.holding.bootId !== o.bootId;
  if (rebooted) {
    if (!o.healthy) return { type: 'wait', reason: 'back from a reboot; waiting until the agent is healthy' };
    return { type: 'release', reason: 'back from the reboot and healthy: releasing the reboot lock' };
  }
  if (o.strategy === 'off') {
    if (o.unschedulable && o.holding === undefined)
      return { type: 'undrain', reason: 'strategy off: machine schedulable again' };
    return {
      type: 'wait',
      reason: o.needReboot ? 'a reboot is needed but REBOOT_STRATEGY=off' : 'strategy off',
    };
  }
  const lock = usesLock(o.strategy, o.cluster);
  if (!o.needReboot) {
    if (o.unschedulable && o.holding === undefined)
      return { type: 'undrain', reason: 'no reboot pending: machine schedulable again' };
    // locksmithd's unlock loop: with a lock strategy, a lock this machine still holds is released.
    if (o.holding !== undefined && !o.unschedulable && lock)
      return { type: 'release', reason: 'no reboot pending: releasing a lock held from before' };
    return { type: 'wait', reason: 'no reboot needed' };
  }
  if (o.untilWindow > 0 && !o.unschedulable && o.holding === undefined) {
    return { type: 'wait', reason: 'outside the reboot window', ms: o.untilWindow };
  }
  if (lock && o.holding === undefined) {
    if (!o.available) return { type: 'wait', reason: 'reboot lock busy (semaphore is at 0 or less)' };
    return { type: 'lock', reason: `reboot needed, strategy ${o.strategy}: taking the reboot lock` };
  }
  if (!o.unschedulable) {
    return { type: 'drain', reason: 'reboot needed: leaving scheduling so the units move elsewhere' };
  }
  if (o.pending.length === 0) {
    return {
      type: 'reboot',
      reason: 'every unit of this machine runs elsewhere: rebooting',
      timedOut: false,
    };
  }
  if ((o.drainingMs ?? 0) >= o.drainTimeoutMs) {
    return {
      type: 'reboot',
      reason: `drain timeout (${Math.round(o.drainTimeoutMs / 1000)} s) passed with ${o.pending.length} unit(s) not yet running elsewhere (${o.pending.join(', ')}): rebooting anyway`,
      timedOut: true,
    };
  }
  return { type: 'wait', reason: `draining: waiting for ${o.pending.join(', ')} to run elsewhere` };
}
