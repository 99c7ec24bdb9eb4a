/**
 * FakeClock: the Clock port (src/lib/clock.ts) driven by hand, for unit tests of code where time
 * decides behaviour. Time moves only through `advance(ms)`, which fires every timer that falls due,
 * in deadline order (ties in the order they were set), with `now()` equal to each timer's deadline
 * while it runs; a timer set by a firing timer fires in the same `advance` if it falls due too.
 */
import type { Clock, ClockTimer } from './clock.js';

interface Pending extends ClockTimer {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private pending: Pending[] = [];
  private seq = 0;

  constructor(public t = 1_000_000) {}

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): ClockTimer {
    const p: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, unref: () => p };
    this.pending.push(p);
    return p;
  }

  clearTimeout(timer: ClockTimer | undefined): void {
    this.pending = this.pending.filter((p) => p !== timer);
  }

  /** Timers not yet fired. */
  get timers(): number {
    return this.pending.length;
  }

  /** Move time forward by `ms`, firing what falls due on the way. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`FakeClock.advance: ms must be >= 0 (got ${ms})`);
    const end = this.t + ms;
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.pending)
        if (p.at <= end && (!next || p.at < next.at || (p.at === next.at && p.seq < next.seq))) next = p;
      if (!next) break;
      this.pending = this.pending.filter((p) => p !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }
}
