/**
 * Matches systemd jobs to their `JobRemoved` signal.
 *
 * INVARIANTS
 * - One subscription for all jobs: the driver feeds every JobRemoved here (`removed`), whoever started
 *   the job. Waiters are keyed by job object path.
 * - JobRemoved can be dispatched before the StartUnit reply's continuation runs (both may be in one
 *   socket read), so results nobody waits for yet are kept briefly (bounded, newest `recentMax`), and
 *   `wait` checks them first.
 * - `wait` never hangs: it settles on JobRemoved, on `settle` (the driver inferred the result after a
 *   reconnect), on its timeout (`{ result: 'timeout', clientTimeout: true }`), or on `failAll`.
 */
import type { JobKind, UnitState } from './manager.js';

export interface JobEnd {
  result: string;
  /** The result was inferred from unit state because JobRemoved was lost. */
  inferred: boolean;
  /** Our own deadline passed; the job may still be queued or running in systemd. */
  clientTimeout: boolean;
}

interface Waiter {
  unit: string;
  resolve: (e: JobEnd) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
}

export class JobTracker {
  private readonly waiters = new Map<string, Waiter>();
  private readonly recent = new Map<string, string>();

  constructor(private readonly recentMax = 1024) {}

  /** Feed a JobRemoved(id, job, unit, result) signal. */
  removed(job: string, result: string): void {
    const w = this.waiters.get(job);
    if (w) {
      this.waiters.delete(job);
      clearTimeout(w.timer);
      w.resolve({ result, inferred: false, clientTimeout: false });
      return;
    }
    this.recent.set(job, result);
    if (this.recent.size > this.recentMax) {
      const oldest = this.recent.keys().next().value;
      if (oldest !== undefined) this.recent.delete(oldest);
    }
  }

  wait(job: string, unit: string, timeoutMs: number): Promise<JobEnd> {
    const early = this.recent.get(job);
    if (early !== undefined) {
      this.recent.delete(job);
      return Promise.resolve({ result: early, inferred: false, clientTimeout: false });
    }
    if (this.waiters.has(job)) return Promise.reject(new Error(`already waiting for job ${job}`));
    return new Promise<JobEnd>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(job);
        resolve({ result: 'timeout', inferred: false, clientTimeout: true });
      }, timeoutMs);
      this.waiters.set(job, { unit, resolve, reject, timer });
    });
  }

  /** Jobs being waited for: [job path, unit]. */
  pending(): [string, string][] {
    return [...this.waiters].map(([job, w]) => [job, w.unit]);
  }

  /** Settles a waiter with an inferred result (JobRemoved was lost). */
  settle(job: string, result: string): void {
    const w = this.waiters.get(job);
    if (!w) return;
    this.waiters.delete(job);
    clearTimeout(w.timer);
    w.resolve({ result, inferred: true, clientTimeout: false });
  }

  failAll(err: unknown): void {
    for (const [job, w] of this.waiters) {
      this.waiters.delete(job);
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.recent.clear();
  }
}

/** What a job most likely ended with, judged from the unit's state (JobRemoved was missed). */
export function inferResult(kind: JobKind, s: UnitState): string {
  if (kind === 'stop') return s.activeState === 'inactive' || s.activeState === 'failed' ? 'done' : 'failed';
  switch (s.activeState) {
    case 'active':
    case 'reloading':
    case 'activating':
      return 'done';
    case 'inactive':
      return s.result === 'success' ? 'done' : 'failed';
    case 'failed':
    case 'deactivating':
    case 'maintenance':
      return 'failed';
  }
}
