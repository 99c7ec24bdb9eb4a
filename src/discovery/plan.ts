/**
 * The registration planner (pure): which service endpoints this machine should have in the registry,
 * given its containers, compared with what it has registered.
 *
 * A container is registered when it runs (not paused), carries `flotilla.service=NAME:PORT[,…]`, and
 * is not `unhealthy`. A container with a health check that has not passed yet is registered with
 * health `starting` (listed, but readers that route traffic skip it). Everything else of this
 * machine's that is registered goes.
 *
 * INVARIANTS
 *   - Only this machine's endpoints are ever put or removed.
 *   - An unchanged endpoint on the current lease is not rewritten (its `registered` time stays).
 *   - An endpoint on another lease (an older one of ours) is rewritten onto the current lease.
 */
import type { EndpointEntry } from '../registry/registry.js';
import { KEYS, type EndpointHealth, type ServiceEndpointRecord } from '../registry/types.js';
import { SERVICE_LABEL, UNIT_LABEL, parseServiceSpec } from './services.js';

/** What discovery needs to know about a container (from `docker inspect`). */
export interface ServiceContainer {
  id: string;
  /** Name without the leading slash. */
  name: string;
  labels: Record<string, string>;
  running: boolean;
  paused?: boolean;
  /** Docker health status; undefined when the container has no health check. */
  health?: 'starting' | 'healthy' | 'unhealthy';
}

export interface EndpointPlan {
  put: ServiceEndpointRecord[];
  remove: { service: string; machineID: string; port: number }[];
  /** Containers (or specs) that ask for registration but cannot be registered, with the reason. */
  skipped: { container: string; reason: string }[];
  /** How many endpoints this machine has once the plan is applied. */
  desired: number;
}

export interface PlanInput {
  machineID: string;
  ip: string;
  lease: string;
  containers: ServiceContainer[];
  /** What is registered now (any machine; others' entries are ignored). */
  registered: EndpointEntry[];
  now: number;
}

/** The endpoints a container should have (empty when it should have none), or the reason it cannot. */
export function containerEndpoints(
  c: ServiceContainer,
  machineID: string,
  ip: string,
  now: number,
): { endpoints: ServiceEndpointRecord[]; skipped: string[] } {
  const label = c.labels[SERVICE_LABEL];
  if (label === undefined || !c.running || c.paused || c.health === 'unhealthy') {
    return { endpoints: [], skipped: [] };
  }
  let specs;
  try {
    specs = parseServiceSpec(label, `label ${SERVICE_LABEL} of container ${c.name}`);
  } catch (err) {
    return { endpoints: [], skipped: [(err as Error).message] };
  }
  const health: EndpointHealth = c.health ?? 'none';
  const endpoints: ServiceEndpointRecord[] = [];
  for (const s of specs) {
    const port = s.port;
    const rec: ServiceEndpointRecord = {
      service: s.name,
      machineID,
      ip,
      port,
      container: c.id,
      health,
      registered: now,
    };
    const unit = c.labels[UNIT_LABEL];
    if (unit) rec.unit = unit;
    endpoints.push(rec);
  }
  return { endpoints, skipped: [] };
}

/** Compare two records, ignoring when they were registered. */
function same(a: ServiceEndpointRecord, b: ServiceEndpointRecord): boolean {
  return (
    a.service === b.service &&
    a.machineID === b.machineID &&
    a.ip === b.ip &&
    a.port === b.port &&
    a.container === b.container &&
    a.unit === b.unit &&
    a.health === b.health
  );
}

export function planEndpoints(input: PlanInput): EndpointPlan {
  const { machineID, ip, lease, now } = input;
  const desired = new Map<string, ServiceEndpointRecord>();
  const skipped: EndpointPlan['skipped'] = [];
  // Stable order: the oldest container ID first wins a key two containers claim.
  for (const c of [...input.containers].sort((a, b) => a.id.localeCompare(b.id))) {
    const r = containerEndpoints(c, machineID, ip, now);
    for (const reason of r.skipped) skipped.push({ container: c.id, reason });
    for (const e of r.endpoints) {
      const key = KEYS.endpoint(e.service, e.machineID, e.port);
      const prev = desired.get(key);
      if (prev) {
        skipped.push({
          container: c.id,
          reason: `container ${c.name}: service ${e.service} port ${e.port} is already registered by container ${prev.container.slice(0, 12)}`,
        });
        continue;
      }
      desired.set(key, e);
    }
  }
  const mine = input.registered.filter((e) => e.record.machineID === machineID);
  const current = new Map(mine.map((e) => [e.key, e]));
  const put: ServiceEndpointRecord[] = [];
  for (const [key, rec] of desired) {
    const cur = current.get(key);
    if (cur && cur.lease === lease && same(cur.record, rec)) continue;
    // Keep the original registration time when only the lease moved or nothing but health changed.
    put.push(
      cur && cur.record.container === rec.container ? { ...rec, registered: cur.record.registered } : rec,
    );
  }
  const remove = mine
    .filter((e) => !desired.has(e.key))
    .map((e) => ({ service: e.record.service, machineID, port: e.record.port }));
  return { put, remove, skipped, desired: desired.size };
}
