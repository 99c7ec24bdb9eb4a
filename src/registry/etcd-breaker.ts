/**
 * The per-member circuit breaker EtcdKvStore gives etcd3's connection pool (`faultHandling.host`),
 * so that a dead member is skipped by streams as well as by calls.
 *
 * etcd3 asks a member's policy to run each request. A unary call succeeds or fails inside that run.
 * A stream (Watch, LeaseKeepAlive) is different: the run only *opens* it, which always works, even
 * towards a member that is down, and the failure comes later, reported to the policy by etcd3's
 * markFailed. cockatiel's ConsecutiveBreaker counts that opening as a success. The counter then goes
 * 0 → 1 → 0 → 1 for ever, the breaker never opens, and with endpoints in a fixed order every
 * reconnect of the watch goes back to the same dead member. We measured this in the local-member
 * layout: an agent whose own member was down did not see a new unit within 10 s.
 *
 * Here a stream's opening counts as neither. `failures` consecutive failures (unary errors and
 * stream errors alike) open the breaker for `halfOpenAfterMs`. While it is open every request is
 * refused before it starts, so etcd3 goes on to the next member. After that time the breaker is
 * half-open and requests go through again: a failure opens it again, a unary success closes it.
 */
import { BrokenCircuitError } from 'cockatiel';
import { systemClock, type TimeSource } from '../lib/clock.js';

export interface HostBreakerOptions {
  /** Consecutive failures that open the breaker (3). */
  failures?: number;
  /** How long an open breaker refuses requests (1000 ms). */
  halfOpenAfterMs?: number;
  /** Which errors count against the member (etcd3's isRecoverableError); others pass through. */
  counts: (err: Error) => boolean;
  clock?: TimeSource;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

/** A gRPC stream as etcd3's stream openers return it. */
function isStream(v: unknown): boolean {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as { on?: unknown }).on === 'function' &&
    typeof (v as { write?: unknown }).write === 'function'
  );
}

export class HostBreaker {
  private consecutive = 0;
  private openedAt: number | undefined;
  private readonly failures: number;
  private readonly halfOpenAfterMs: number;
  private readonly clock: TimeSource;

  constructor(private readonly opts: HostBreakerOptions) {
    this.failures = opts.failures ?? 3;
    this.halfOpenAfterMs = opts.halfOpenAfterMs ?? 1000;
    this.clock = opts.clock ?? systemClock;
  }

  get state(): BreakerState {
    if (this.openedAt === undefined) return 'closed';
    return this.clock.now() - this.openedAt < this.halfOpenAfterMs ? 'open' : 'half-open';
  }

  /** cockatiel's IPolicy.execute, the only member etcd3 uses. */
  async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
    if (this.state === 'open') throw new BrokenCircuitError();
    let out: T;
    try {
      out = await fn({ signal: new AbortController().signal });
    } catch (err) {
      if (err instanceof Error && this.opts.counts(err)) this.failed();
      throw err;
    }
    if (!isStream(out)) this.succeeded();
    return out;
  }

  private failed(): void {
    this.consecutive++;
    // Half-open: one failure is enough to open again.
    if (this.openedAt !== undefined || this.consecutive >= this.failures) this.openedAt = this.clock.now();
  }

  private succeeded(): void {
    this.consecutive = 0;
    this.openedAt = undefined;
  }
}
