/**
 * The agent's Prometheus metrics (prom-client), all named `flotilla_*`, served at `/metrics` on the
 * API's unix socket and TCP listener.
 *
 * Code elsewhere only calls the tiny recorders below (`observeReconcile`, `countDecision`, ...); the
 * cluster-wide gauges (units by state, lease, leadership) are read at scrape time from a source the
 * daemon registers (`setGaugeSource`), so nothing is counted twice and nothing polls. prom-client
 * itself is loaded by `initMetrics()` after the agent is ready (or by the first scrape).
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
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The metric objects, built once prom-client is loaded. */
interface Metrics {
  registry: Registry;
  reconcile: Histogram;
  decisions: Counter<'kind'>;
  registryLatency: Histogram<'op' | 'result'>;
  apiRequests: Counter<'method' | 'code'>;
  units: Gauge<'state'>;
  unitsDesired: Gauge<'state'>;
  machineUnits: Gauge<'active_state'>;
  machines: Gauge;
  registryAvailable: Gauge;
  leaseHeld: Gauge;
  engineLeader: Gauge;
  collectDefaultMetrics: (typeof import('prom-client'))['collectDefaultMetrics'];
}

function build(pc: typeof import('prom-client')): Metrics {
  const registry = new pc.Registry();
  const registers = [registry];
  return {
    registry,
    collectDefaultMetrics: pc.collectDefaultMetrics,
    reconcile: new pc.Histogram({
      name: 'flotilla_agent_reconcile_duration_seconds',
      help: 'Duration of one agent reconcile pass (plan + systemd actions)',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    decisions: new pc.Counter({
      name: 'flotilla_engine_scheduling_decisions_total',
      help: 'Scheduling decisions made by the engine leader, by kind',
      labelNames: ['kind'] as const,
      registers,
    }),
    registryLatency: new pc.Histogram({
      name: 'flotilla_registry_request_duration_seconds',
      help: 'Latency of registry requests (etcd or embedded), by operation and result',
      labelNames: ['op', 'result'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    apiRequests: new pc.Counter({
      name: 'flotilla_api_requests_total',
      help: 'API requests answered, by method and status code',
      labelNames: ['method', 'code'] as const,
      registers,
    }),
    units: new pc.Gauge({
      name: 'flotilla_units',
      help: 'Units in the cluster by current state (inactive, loaded, launched)',
      labelNames: ['state'] as const,
      registers,
    }),
    unitsDesired: new pc.Gauge({
      name: 'flotilla_units_desired',
      help: 'Units in the cluster by desired state',
      labelNames: ['state'] as const,
      registers,
    }),
    machineUnits: new pc.Gauge({
      name: 'flotilla_machine_units',
      help: 'Units on this machine by systemd ActiveState',
      labelNames: ['active_state'] as const,
      registers,
    }),
    machines: new pc.Gauge({ name: 'flotilla_machines', help: 'Machines in the cluster', registers }),
    registryAvailable: new pc.Gauge({
      name: 'flotilla_registry_available',
      help: '1 while the registry can be read (the cluster watch works), else 0',
      registers,
    }),
    leaseHeld: new pc.Gauge({
      name: 'flotilla_lease_held',
      help: "1 while this machine's presence lease is held (renewed within its TTL), 0 when lost",
      registers,
    }),
    engineLeader: new pc.Gauge({
      name: 'flotilla_engine_leader',
      help: '1 on the machine whose engine is the leader, else 0',
      registers,
    }),
  };
}

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

let metrics: Metrics | undefined;
let loading: Promise<Metrics> | undefined;
/** Observations made before prom-client is loaded (agent start-up), replayed once it is. */
const pending: ((m: Metrics) => void)[] = [];
const MAX_PENDING = 10_000;
let source: (() => GaugeValues | undefined) | undefined;
let processMetrics = false;

function record(fn: (m: Metrics) => void): void {
  if (metrics) fn(metrics);
  else if (pending.length < MAX_PENDING) pending.push(fn);
}

/**
 * Load prom-client and build the metrics (idempotent). The agent calls this once it is ready, so
 * loading the library stays off its start-up path (a restart must resume its lease within agent_ttl);
 * what was recorded before is replayed. With `processMetrics`, also start prom-client's process
 * metrics (CPU, memory, event loop lag, GC), prefixed `flotilla_`.
 */
export async function initMetrics(opts: { processMetrics?: boolean } = {}): Promise<void> {
  loading ??= import('prom-client').then((pc) => {
    const m = build(pc);
    for (const fn of pending.splice(0)) fn(m);
    metrics = m;
    return m;
  });
  const m = await loading;
  if (opts.processMetrics && !processMetrics) {
    processMetrics = true;
    // The event-loop delay monitor samples every 50 ms, not prom-client's 10 ms: an idle agent
    // must not wake up 100 times a second for a histogram.
    m.collectDefaultMetrics({ register: m.registry, prefix: 'flotilla_', eventLoopMonitoringPrecision: 50 });
  }
}

/** The agent's gauges come from `fn`, called once per scrape. */
export function setGaugeSource(fn: (() => GaugeValues | undefined) | undefined): void {
  source = fn;
}

export function observeReconcile(ms: number): void {
  record((m) => m.reconcile.observe(ms / 1000));
}

export function countDecision(kind: string): void {
  record((m) => m.decisions.inc({ kind }));
}

export function observeRegistry(op: string, ms: number, ok: boolean): void {
  record((m) => m.registryLatency.observe({ op, result: ok ? 'ok' : 'error' }, ms / 1000));
}

export function countApiRequest(method: string, code: number): void {
  record((m) => m.apiRequests.inc({ method, code: String(code) }));
}

function setAll(g: Gauge<string>, label: string, values: Record<string, number>): void {
  g.reset();
  for (const [k, v] of Object.entries(values)) g.set({ [label]: k }, v);
}

/** The Prometheus text exposition, with the gauges refreshed from the source. */
export async function metricsText(): Promise<{ contentType: string; text: string }> {
  await initMetrics();
  const m = metrics!;
  const v = source?.();
  if (v) {
    setAll(m.units, 'state', v.unitsByState);
    setAll(m.unitsDesired, 'state', v.unitsByDesiredState);
    setAll(m.machineUnits, 'active_state', v.machineUnitsByActiveState);
    m.machines.set(v.machines);
    m.registryAvailable.set(v.registryAvailable ? 1 : 0);
    m.leaseHeld.set(v.leaseHeld ? 1 : 0);
    m.engineLeader.set(v.engineLeader ? 1 : 0);
  }
  return { contentType: m.registry.contentType, text: await m.registry.metrics() };
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
