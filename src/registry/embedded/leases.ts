/**
 * Lease deadlines: when each lease expires, by an injectable clock, and one unref'd timer set for the
 * earliest deadline. Deadlines are runtime state, not logged: on open every lease gets a fresh TTL.
 *
 * The timer is only a trigger; `due()` decides by the clock. A keep-alive moves a deadline later
 * without touching the timer, which then fires early, finds nothing due and re-arms. Tests with a
 * fake clock advance it and call the store's `expireLeases()` (the store also checks `due` before
 * every request, so an expired lease is never used after its deadline, whatever the timer does).
 */

import type { TimeSource } from '../../lib/clock.js';

const MAX_DELAY = 2 ** 31 - 1;

export class LeaseDeadlines {
  private readonly deadlines = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  /** A lower bound of every deadline (exact after `arm`). */
  private earliest = Infinity;
  private stopped = false;

  constructor(
    private readonly clock: TimeSource,
    private readonly onDue: () => void,
  ) {}

  /** Set (or reset) a lease's deadline to now + ttl seconds. */
  set(id: string, ttlSeconds: number): void {
    const at = this.clock.now() + ttlSeconds * 1000;
    this.deadlines.set(id, at);
    if (at < this.earliest) this.earliest = at;
    if (at < this.timerAt) this.arm();
  }

  delete(id: string): void {
    this.deadlines.delete(id);
  }

  /** Milliseconds left (≥ 0), or undefined for an unknown lease. */
  remainingMs(id: string): number | undefined {
    const at = this.deadlines.get(id);
    return at === undefined ? undefined : Math.max(0, at - this.clock.now());
  }

  /** True when some lease may be past its deadline (cheap: one comparison). */
  anyDue(): boolean {
    return this.clock.now() >= this.earliest;
  }

  /** Leases past their deadline, earliest first (ties by id), so expiry order is deterministic. */
  due(): string[] {
    const now = this.clock.now();
    const out: [string, number][] = [];
    let earliest = Infinity;
    for (const [id, at] of this.deadlines) {
      if (at <= now) out.push([id, at]);
      else if (at < earliest) earliest = at;
    }
    this.earliest = earliest;
    return out.sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([id]) => id);
  }

  /** Point the timer at the earliest deadline. */
  arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    if (this.stopped) return;
    let earliest = Infinity;
    for (const at of this.deadlines.values()) if (at < earliest) earliest = at;
    this.earliest = earliest;
    if (earliest === Infinity) return;
    const delay = Math.min(MAX_DELAY, Math.max(1, Math.ceil(earliest - this.clock.now())));
    this.timerAt = earliest;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.onDue();
      this.arm();
    }, delay);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
