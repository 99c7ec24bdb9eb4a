/**
 * The agent's Prometheus metrics (prom-client), all named `flotilla_*`, served at `/metrics` on the
 * API's unix socket and TCP listener.
 *
 * Code elsewhere only calls the tiny recorders below (`observeReconcile`, `countDecision`, ...); the
 * cluster-wide gauges (units by state, lease, leadership) are read at scrape time from a source the
 * daemon registers (`setGaugeSource`), so nothing is counted twice and nothing polls.
 *
 *   flotilla_agent_reconcile_duration_seconds        histogram  one agent reconcile pass
 *   flotilla_engine_scheduling_decisions_total{kind} counter    schedule | unschedule | unschedulable | forget
 *   flotilla_units{state}                            gauge      cluster units by current state (inactive|loaded|launched)
 *   flotilla_units_desired{state}                    gauge      cluster units by desired state
 *   flotilla_machine_units{active_state}             gauge      units on this machine by systemd ActiveState
 *   flotilla_machines                                gauge      machines in the cluster
 *   flotilla_registry_request_duration_seconds{op,result}  histogram  registry (etcd / embedded) calls
 *   flotilla_registry_available                      gauge      1 while the registry watch works
 *   flotilla_lease_held                              gauge      1 while the presence lease is held, 0 when lost
 *   flotilla_engine_leader                           gauge      1 on the engine leader
 *   flotilla_api_requests_total{method,code}         counter    API requests answered
 *   flotilla_process_*, flotilla_nodejs_*            prom-client's default process metrics
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const metricsRegistry = new Registry();

const reconcile = new Histogram({
  name: 'flotilla_agent_reconcile_duration_seconds',
  help: 'Duration of one agent reconcile pass (plan + systemd actions)',
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [metricsRegistry],
});

const decisions = new Counter({
  name: 'flotilla_engine_scheduling_decisions_total',
  help: 'Scheduling decisions made by the engine leader, by kind',
  labelNames: ['kind'] as const,
  registers: [metricsRegistry],
});

const registryLatency = new Histogram({
  name: 'flotilla_registry_request_duration_seconds',
  help: 'Latency of registry requests (etcd or embedded), by operation and result',
  labelNames: ['op', 'result'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [metricsRegistry],
});

const apiRequests = new Counter({
  name: 'flotilla_api_requests_total',
  help: 'API requests answered, by method and status code',
  labelNames: ['method', 'code'] as const,
  registers: [metricsRegistry],
});

const units = new Gauge({
  name: 'flotilla_units',
  help: 'Units in the cluster by current state (inactive, loaded, launched)',
  labelNames: ['state'] as const,
  registers: [metricsRegistry],
});
const unitsDesired = new Gauge({
  name: 'flotilla_units_desired',
  help: 'Units in the cluster by desired state',
  labelNames: ['state'] as const,
  registers: [metricsRegistry],
});
const machineUnits = new Gauge({
  name: 'flotilla_machine_units',
  help: 'Units on this machine by systemd ActiveState',
  labelNames: ['active_state'] as const,
  registers: [metricsRegistry],
});
const machines = new Gauge({
  name: 'flotilla_machines',
  help: 'Machines in the cluster',
  registers: [metricsRegistry],
});
const registryAvailable = new Gauge({
  name: 'flotilla_registry_available',
  help: '1 while the registry can be read (the cluster watch works), else 0',
  registers: [metricsRegistry],
});
const leaseHeld = new Gauge({
  name: 'flotilla_lease_held',
  help: "1 while this machine's presence lease is held (renewed within its TTL), 0 when lost",
  registers: [metricsRegistry],
});
const engineLeader = new Gauge({
  name: 'flotilla_engine_leader',
  help: '1 on the machine whose engine is the leader, else 0',
  registers: [metricsRegistry],
});

/** What the gauges show, read at scrape time. */
export interface GaugeValues {
  unitsByState: Record<string, number>;
  unitsByDesiredState: Record<string, number>;
  machineUnitsByActiveState: Record<string, number>;
  machines: number;
  registryAvailable: boolean;
  leaseHeld: boolean;
  engineLeader: boolean;
}

let source: (() => GaugeValues | undefined) | undefined;
let defaultsOn = false;

/** The agent's gauges come from `fn`, called once per scrape. */
export function setGaugeSource(fn: (() => GaugeValues | undefined) | undefined): void {
  source = fn;
}

/** Start prom-client's process metrics (CPU, memory, event loop lag, GC), prefixed `flotilla_`. */
export function enableProcessMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  collectDefaultMetrics({ register: metricsRegistry, prefix: 'flotilla_' });
}

export function observeReconcile(ms: number): void {
  reconcile.observe(ms / 1000);
}

export function countDecision(kind: string): void {
  decisions.inc({ kind });
}

export function observeRegistry(op: string, ms: number, ok: boolean): void {
  registryLatency.observe({ op, result: ok ? 'ok' : 'error' }, ms / 1000);
}

export function countApiRequest(method: string, code: number): void {
  apiRequests.inc({ method, code: String(code) });
}

function setAll(g: Gauge<string>, label: string, values: Record<string, number>): void {
  g.reset();
  for (const [k, v] of Object.entries(values)) g.set({ [label]: k }, v);
}

/** The Prometheus text exposition, with the gauges refreshed from the source. */
export async function metricsText(): Promise<{ contentType: string; text: string }> {
  const v = source?.();
  if (v) {
    setAll(units, 'state', v.unitsByState);
    setAll(unitsDesired, 'state', v.unitsByDesiredState);
    setAll(machineUnits, 'active_state', v.machineUnitsByActiveState);
    machines.set(v.machines);
    registryAvailable.set(v.registryAvailable ? 1 : 0);
    leaseHeld.set(v.leaseHeld ? 1 : 0);
    engineLeader.set(v.engineLeader ? 1 : 0);
  }
  return { contentType: metricsRegistry.contentType, text: await metricsRegistry.metrics() };
}

/** Names of the store methods that talk to the registry (timed by `instrumentStore`). */
const TIMED = new Set([
  'get',
  'range',
  'put',
  'delete',
  'txn',
  'grantLease',
  'keepAliveOnce',
  'revokeLease',
  'leaseTimeToLive',
  'revision',
]);

/**
 * Wrap a registry store so every request is timed into flotilla_registry_request_duration_seconds.
 * Methods are called on the real store (not the proxy); watches and everything else pass through.
 */
export function instrumentStore<T extends object>(store: T): T {
  return new Proxy(store, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      const fn = v as (...a: unknown[]) => unknown;
      if (typeof prop !== 'string' || !TIMED.has(prop)) return fn.bind(target);
      return (...args: unknown[]) => {
        const t0 = performance.now();
        const r = fn.apply(target, args);
        if (r instanceof Promise) {
          return r.then(
            (x: unknown) => {
              observeRegistry(prop, performance.now() - t0, true);
              return x;
            },
            (err: unknown) => {
              observeRegistry(prop, performance.now() - t0, false);
              throw err;
            },
          );
        }
        return r;
      };
    },
  });
}
