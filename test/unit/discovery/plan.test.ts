/** The registration planner: containers + what is registered → puts and removes (pure). */
import { describe, expect, it } from 'vitest';
import { planEndpoints, type ServiceContainer } from '../../../src/discovery/plan.js';
import type { EndpointEntry } from '../../../src/registry/registry.js';
import { KEYS, type ServiceEndpointRecord } from '../../../src/registry/types.js';

const ME = 'machine-a';
const IP = '10.214.0.11';
const LEASE = '7';

function container(over: Partial<ServiceContainer> & { id: string }): ServiceContainer {
  return {
    name: `c-${over.id}`,
    labels: { 'flotilla.service': 'database:5432' },
    running: true,
    ...over,
  };
}

function entry(rec: Partial<ServiceEndpointRecord> & { port: number }, lease = LEASE): EndpointEntry {
  const record: ServiceEndpointRecord = {
    service: 'database',
    machineID: ME,
    ip: IP,
    container: 'c1',
    health: 'none',
    registered: 1000,
    ...rec,
  };
  return {
    key: KEYS.endpoint(record.service, record.machineID, record.port),
    record,
    createRevision: 1,
    modRevision: 1,
    lease,
  };
}

const plan = (containers: ServiceContainer[], registered: EndpointEntry[] = []) =>
  planEndpoints({ machineID: ME, ip: IP, lease: LEASE, containers, registered, now: 5000 });

describe('planEndpoints', () => {
  it('registers a running host-network container at the machine IP and its port', () => {
    const p = plan([
      container({ id: 'c1', labels: { 'flotilla.service': 'database:5432', 'flotilla.unit': 'db.service' } }),
    ]);
    expect(p.put).toEqual([
      {
        service: 'database',
        machineID: ME,
        ip: IP,
        port: 5432,
        container: 'c1',
        unit: 'db.service',
        health: 'none',
        registered: 5000,
      },
    ]);
    expect(p.remove).toEqual([]);
    expect(p.desired).toBe(1);
  });

  it('registers every service of a multi-service label', () => {
    const p = plan([container({ id: 'c1', labels: { 'flotilla.service': 'web:80,admin:8080' } })]);
    expect(p.put.map((r) => `${r.service}:${r.port}`)).toEqual(['web:80', 'admin:8080']);
  });

  it('skips a bad label with the parse error, naming the container', () => {
    const p = plan([container({ id: 'c1', name: 'web-1', labels: { 'flotilla.service': 'Web:80' } })]);
    expect(p.put).toEqual([]);
    expect(p.skipped[0]!.reason).toMatch(/container web-1.*invalid service name "Web"/);
  });

  it('does not register stopped, paused or unhealthy containers, or ones without the label', () => {
    const p = plan([
      container({ id: 'c1', running: false }),
      container({ id: 'c2', paused: true }),
      container({ id: 'c3', health: 'unhealthy' }),
      container({ id: 'c4', labels: {} }),
    ]);
    expect(p.put).toEqual([]);
    expect(p.skipped).toEqual([]);
  });

  it('registers a starting container with health starting, and updates it to healthy', () => {
    const p1 = plan([container({ id: 'c1', health: 'starting' })]);
    expect(p1.put[0]!.health).toBe('starting');
    const p2 = plan(
      [container({ id: 'c1', health: 'healthy' })],
      [entry({ port: 5432, health: 'starting' })],
    );
    expect(p2.put).toHaveLength(1);
    expect(p2.put[0]!.health).toBe('healthy');
    // Same container: the registration time is kept.
    expect(p2.put[0]!.registered).toBe(1000);
  });

  it('removes an endpoint whose container became unhealthy or died', () => {
    const p = plan([container({ id: 'c1', health: 'unhealthy' })], [entry({ port: 5432 })]);
    expect(p.put).toEqual([]);
    expect(p.remove).toEqual([{ service: 'database', machineID: ME, port: 5432 }]);
    expect(plan([], [entry({ port: 5432 })]).remove).toHaveLength(1);
  });

  it('leaves an unchanged endpoint alone, and re-puts it when it hangs on another lease', () => {
    const current = entry({ port: 5432 });
    expect(plan([container({ id: 'c1' })], [current])).toMatchObject({ put: [], remove: [] });
    const old = entry({ port: 5432 }, '3');
    const p = plan([container({ id: 'c1' })], [old]);
    expect(p.put).toHaveLength(1);
    expect(p.put[0]!.registered).toBe(1000);
  });

  it('replaces the container of an endpoint (new registration time)', () => {
    const p = plan([container({ id: 'c2' })], [entry({ port: 5432, container: 'c1' })]);
    expect(p.put).toEqual([expect.objectContaining({ container: 'c2', registered: 5000 })]);
    expect(p.remove).toEqual([]);
  });

  it('never touches other machines', () => {
    const other = entry({ port: 5432, machineID: 'machine-b', ip: '10.214.0.12' });
    const p = plan([], [other]);
    expect(p.remove).toEqual([]);
    expect(plan([container({ id: 'c1' })], [other]).put).toHaveLength(1);
  });

  it('gives a key two containers claim to the first by ID and says why the other is skipped', () => {
    const p = plan([container({ id: 'bbb', name: 'second' }), container({ id: 'aaa', name: 'first' })]);
    expect(p.put.map((r) => r.container)).toEqual(['aaa']);
    expect(p.skipped[0]!.reason).toMatch(
      /container second: service database port 5432 is already registered/,
    );
  });
});
