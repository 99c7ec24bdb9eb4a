/**
 * The Clock port: where time decides behaviour (lease renewals and their deadlines, container units'
 * retry spacing and publish timers, reboot windows and drain timeouts), the code asks a Clock, never
 * `Date.now()` or the global timers directly, so unit tests can drive it with FakeClock
 * (src/lib/fake-clock.ts) instead of waiting or patching globals.
 *
 * `now()` is milliseconds. Which epoch depends on the clock: `systemClock` is wall time (Date.now:
 * comparable with timestamps written to disk or the registry, and with reboot windows);
 * `monotonicClock` only measures differences (performance.now: immune to wall-clock jumps, for
 * deadlines such as the embedded registry's leases).
 */

/** A pending timer: opaque; `unref` lets the process exit while it is pending (a no-op in fakes). */
export interface ClockTimer {
  unref?(): unknown;
}

export interface Clock {
  /** Milliseconds (see the clock's epoch above). */
  now(): number;
  /** Call `fn` once after `ms` milliseconds by this clock. */
  setTimeout(fn: () => void, ms: number): ClockTimer;
  /** Cancel a timer of this clock (undefined: nothing to cancel). */
  clearTimeout(timer: ClockTimer | undefined): void;
}

/** What code that only reads the time (windows, deadlines checked on demand) needs. */
export type TimeSource = Pick<Clock, 'now'>;

function nodeTimers(now: () => number): Clock {
  return {
    now,
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout | undefined),
  };
}

/** Wall time (ms since the Unix epoch) and Node's timers. */
export const systemClock: Clock = nodeTimers(() => Date.now());

/** Monotonic time (ms since the process started; only differences mean anything) and Node's timers. */
export const monotonicClock: Clock = nodeTimers(() => performance.now());
