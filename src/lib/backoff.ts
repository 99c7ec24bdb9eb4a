/**
 * The one exponential backoff and the one sleep. Every retry loop in flotilla (the system bus, the
 * Docker events stream, the services watch, the registrar, the presence lease, datasources) waits
 * `next()` ms, doubling from `minMs` up to `maxMs`, and calls `reset()` once it succeeds again.
 * cockatiel (a dependency through the etcd backend) covers the etcd client's retries and circuit
 * breaker, where a policy wraps a call; these loops reconnect streams, which a policy does not fit.
 */

export class Backoff {
  private delay: number;

  constructor(
    readonly minMs: number,
    readonly maxMs: number,
    readonly factor = 2,
  ) {
    if (!(minMs > 0) || !(maxMs >= minMs) || !(factor >= 1)) {
      throw new RangeError(`backoff: need 0 < min (${minMs}) <= max (${maxMs}) and factor >= 1 (${factor})`);
    }
    this.delay = minMs;
  }

  /** The delay to wait now; each call multiplies the next one by `factor`, up to `maxMs`. */
  next(): number {
    const d = this.delay;
    this.delay = Math.min(this.maxMs, this.delay * this.factor);
    return d;
  }

  /** The delay `next()` would return, without advancing. */
  peek(): number {
    return this.delay;
  }

  /** Back to `minMs` (after a success). */
  reset(): void {
    this.delay = this.minMs;
  }
}

/**
 * Wait `ms` milliseconds. With a signal, rejects with Error('aborted') as soon as it aborts (also
 * when it already has) and leaves no timer behind.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error('aborted'));
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new Error('aborted'));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
