/**
 * What etcd3's connection pool does when a call or stream fails (bench-only look into etcd3
 * internals, no change to it): every "recoverable" gRPC error (DEADLINE_EXCEEDED, CANCELLED,
 * UNAVAILABLE, RESOURCE_EXHAUSTED …) of a unary call or a stream makes the pool call
 * `host.resetAllServices()`, which closes the gRPC channel and so every call and stream on it
 * (the watch, the keepalive stream, requests in flight), and counts toward the host's circuit
 * breaker (3 consecutive failures open it for 5 s: every call then fails at once).
 */
import type { Etcd3 } from 'etcd3';

interface Listenable {
  (listener: () => void): unknown;
}
interface PoolHost {
  /** A circuit breaker policy (several members), or cockatiel's noop policy (one member). */
  faultHandling: { onBreak?: Listenable; onReset?: Listenable; onHalfOpen?: Listenable };
  resetAllServices(): void;
}

export interface FaultLog {
  resets: number;
  breaks: number;
  /** The first events: time (s since `t0`), what, and where it came from. */
  events: string[];
}

export function watchFaults(client: Etcd3, label: () => string): FaultLog {
  const log: FaultLog = { resets: 0, breaks: 0, events: [] };
  const note = (what: string) => {
    if (log.events.length < 12) log.events.push(`${label()}: ${what}`);
  };
  const pool = (client as unknown as { pool?: { hosts?: PoolHost[] } }).pool;
  for (const h of pool?.hosts ?? []) {
    h.faultHandling.onBreak?.(() => {
      log.breaks++;
      note('circuit breaker opened');
    });
    const reset = h.resetAllServices.bind(h);
    h.resetAllServices = () => {
      log.resets++;
      const stack = new Error().stack ?? '';
      note(`channel reset (${stack.includes('markFailed') ? 'a stream failed' : 'a call failed'})`);
      reset();
    };
  }
  return log;
}
