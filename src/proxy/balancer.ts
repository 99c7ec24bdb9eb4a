/**
 * Endpoint selection for the proxy (pure; time is passed in): least connections, ties broken
 * round-robin, with passive failure tracking.
 *
 *   - `update(addresses)` replaces the live set. An address that leaves is `draining`: it keeps its
 *     connection count (they run on) but is never picked again; it is forgotten once it has no
 *     connections. An address that comes back while draining is live again.
 *   - `pick(now, exclude)` returns the live address with the fewest active connections among those
 *     not in failure back-off; when every live address is backing off, among all live ones (a
 *     failed endpoint may be the only one, and the registry says it exists). `exclude` holds the
 *     addresses this connection already tried.
 *   - `failed(addr, now)` starts (or doubles) a back-off, 500 ms up to 10 s; `succeeded` clears it.
 *
 * INVARIANTS: `active` never goes below 0; a draining address is never returned by `pick`.
 */
export interface BalancerEntry {
  address: string;
  active: number;
  draining: boolean;
  failures: number;
  backoffUntil: number;
}

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;

export class Balancer {
  private readonly entries = new Map<string, BalancerEntry>();
  /** Live addresses in the order they were given (for round-robin). */
  private live: string[] = [];
  private next = 0;

  /** Set the live addresses; returns those that started draining (had been live before). */
  update(addresses: string[]): string[] {
    const set = new Set(addresses);
    const started: string[] = [];
    for (const e of this.entries.values()) {
      if (!set.has(e.address) && !e.draining) {
        e.draining = true;
        started.push(e.address);
      }
    }
    for (const a of set) {
      const e = this.entries.get(a);
      if (e) e.draining = false;
      else this.entries.set(a, { address: a, active: 0, draining: false, failures: 0, backoffUntil: 0 });
    }
    for (const [a, e] of this.entries) if (e.draining && e.active === 0) this.entries.delete(a);
    this.live = [...set];
    return started;
  }

  pick(now: number, exclude: ReadonlySet<string> = new Set()): string | undefined {
    const candidates = this.live.filter((a) => !exclude.has(a));
    if (candidates.length === 0) return undefined;
    const healthy = candidates.filter((a) => this.entries.get(a)!.backoffUntil <= now);
    const pool = new Set(healthy.length > 0 ? healthy : candidates);
    let best: string | undefined;
    let bestActive = Infinity;
    // Start at the round-robin cursor so equal loads rotate.
    const n = this.live.length;
    for (let i = 0; i < n; i++) {
      const a = this.live[(this.next + i) % n]!;
      if (!pool.has(a)) continue;
      const act = this.entries.get(a)!.active;
      if (act < bestActive) {
        best = a;
        bestActive = act;
      }
    }
    this.next = (this.live.indexOf(best!) + 1) % n;
    return best;
  }

  acquire(address: string): void {
    const e = this.entries.get(address);
    if (e) e.active++;
  }

  release(address: string): void {
    const e = this.entries.get(address);
    if (!e) return;
    e.active = Math.max(0, e.active - 1);
    if (e.draining && e.active === 0) this.entries.delete(address);
  }

  failed(address: string, now: number): void {
    const e = this.entries.get(address);
    if (!e) return;
    e.failures++;
    e.backoffUntil = now + Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (e.failures - 1));
  }

  succeeded(address: string): void {
    const e = this.entries.get(address);
    if (!e) return;
    e.failures = 0;
    e.backoffUntil = 0;
  }

  isLive(address: string): boolean {
    return this.live.includes(address);
  }

  /** Live addresses, in order. */
  addresses(): string[] {
    return [...this.live];
  }

  snapshot(): BalancerEntry[] {
    return [...this.entries.values()].map((e) => ({ ...e }));
  }
}
