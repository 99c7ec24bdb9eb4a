/**
 * The timers of ContainerUnits, by the Clock port: a delayed reconcile (`later`, for bounded
 * retries) and a debounced publish per unit (a burst of events, create, start, health, costs one
 * registry write). Every timer is unref'd and all of them end with `close()`.
 */
import type { Clock, ClockTimer } from '../lib/clock.js';

/** A burst of container events within this long is published once. */
export const PUBLISH_DEBOUNCE_MS = 50;

export class PublishTimers {
  private readonly publishTimers = new Map<string, ClockTimer>();
  private readonly retries = new Set<ClockTimer>();
  private closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly trigger: () => void,
    private readonly publish: (name: string) => void,
  ) {}

  /** Ask for a reconcile after `ms` (bounded retries). */
  later(ms: number): void {
    if (this.closed) return;
    const t = this.clock.setTimeout(() => {
      this.retries.delete(t);
      if (!this.closed) this.trigger();
    }, ms);
    t.unref?.();
    this.retries.add(t);
  }

  /** Publish a unit's state soon; a burst of events (create, start, health) costs one write. */
  schedulePublish(name: string): void {
    if (this.closed || this.publishTimers.has(name)) return;
    const t = this.clock.setTimeout(() => {
      this.publishTimers.delete(name);
      this.publish(name);
    }, PUBLISH_DEBOUNCE_MS);
    t.unref?.();
    this.publishTimers.set(name, t);
  }

  close(): void {
    this.closed = true;
    for (const t of [...this.publishTimers.values(), ...this.retries]) this.clock.clearTimeout(t);
    this.publishTimers.clear();
    this.retries.clear();
  }
}
