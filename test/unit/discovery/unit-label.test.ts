/**
 * A container unit's `Service=NAME:PORT` options end up as the container label the registrar reads
 * (`flotilla.service=NAME:PORT[,…]`), and the registrar's parser reads that label back.
 */
import { describe, expect, it } from 'vitest';
import { planEndpoints } from '../../../src/discovery/plan.js';
import { createRequest } from '../../../src/container/runner.js';
import { SERVICE_LABEL, parseServiceSpec } from '../../../src/discovery/services.js';
import { parseContainerSection } from '../../../src/container/spec.js';
import { UnitFile } from '../../../src/unit/index.js';

function request(unitText: string) {
  const container = parseContainerSection('db.service', UnitFile.parse(unitText));
  return createRequest(
    {
      version: 1,
      unit: 'db.service',
      unitHash: 'h',
      machineID: 'm1',
      dockerSocket: '/var/run/docker.sock',
      statusFile: '/tmp/x',
      container,
    },
    [],
  );
}

describe('Service= → flotilla.service label', () => {
  it('joins every Service= of the unit into one label', () => {
    const req = request(
      '[Container]\nImage=busybox:latest\nNetwork=host\nService=database:5432\nService=admin:8080\n',
    );
    expect(req.labels?.[SERVICE_LABEL]).toBe('database:5432,admin:8080');
    expect(parseServiceSpec(req.labels![SERVICE_LABEL]!)).toEqual([
      { name: 'database', port: 5432 },
      { name: 'admin', port: 8080 },
    ]);
  });

  it('sets no label without Service=', () => {
    const req = request('[Container]\nImage=busybox:latest\n');
    expect(req.labels?.[SERVICE_LABEL]).toBeUndefined();
  });

  it('the registrar registers the unit container with its unit name', () => {
    const req = request('[Container]\nImage=busybox:latest\nNetwork=host\nService=database:5432\n');
    const plan = planEndpoints({
      machineID: 'm1',
      ip: '10.214.0.11',
      lease: '1',
      containers: [{ id: 'c1', name: 'flotilla-db', labels: req.labels!, running: true }],
      registered: [],
      now: 0,
    });
    expect(plan.put).toEqual([
      expect.objectContaining({ service: 'database', port: 5432, unit: 'db.service' }),
    ]);
  });
});
