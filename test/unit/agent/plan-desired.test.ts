/**
 * planDesiredUnits: which units belong on one machine, in the spirit of fleet's agent/state_test.go
 * and TestScheduleGlobalConflicts (conflicting Global units: the lower name wins).
 */
import { describe, expect, it } from 'vitest';
import { planDesiredUnits } from '../../../src/agent/plan-desired.js';
import type { SchedulerJob } from '../../../src/engine/types.js';
import type { MachineRecord, ScheduleRecord } from '../../../src/registry/types.js';
import { at, job, machine } from '../engine/fixtures.js';

interface Case {
  name: string;
  machine: MachineRecord;
  jobs: SchedulerJob[];
  schedules?: ScheduleRecord[];
  units: string[];
  excluded?: { name: string; reason: string }[];
}

const me = machine('M1', { region: 'eu' });

const cases: Case[] = [
  {
    name: 'units scheduled here are included; units scheduled elsewhere or nowhere are not',
    machine: me,
    jobs: [job('a.service'), job('b.service'), job('c.service')],
    schedules: [
      at('a.service', 'M1'),
      at('b.service', 'M2'),
      at('c.service', undefined, 'no machines in the cluster'),
    ],
    units: ['a.service'],
  },
  {
    name: 'Global units with matching metadata are included, others say why not',
    machine: me,
    jobs: [
      job('g-eu.service', { global: true, metadata: { region: ['eu', 'us'] } }),
      job('g-us.service', { global: true, metadata: { region: ['us'] } }),
      job('g-all.service', { global: true }),
    ],
    units: ['g-all.service', 'g-eu.service'],
    excluded: [
      {
        name: 'g-us.service',
        reason: 'Global unit does not run here: MachineMetadata region=us does not match',
      },
    ],
  },
  {
    name: 'conflicting Global units: the lower name wins (TestScheduleGlobalConflicts)',
    machine: me,
    jobs: [
      job('b-global.service', { global: true }),
      job('a-global.service', { global: true, conflicts: ['b-*'] }),
    ],
    units: ['a-global.service'],
    excluded: [
      {
        name: 'b-global.service',
        reason:
          'conflicts with a-global.service on this machine (a-global.service has Conflicts=b-*); the lower name wins',
      },
    ],
  },
  {
    name: 'a Global unit conflicting with a lower-named scheduled unit does not run here',
    machine: me,
    jobs: [job('a.service'), job('z-global.service', { global: true, conflicts: ['a.service'] })],
    schedules: [at('a.service', 'M1')],
    units: ['a.service'],
    excluded: [
      {
        name: 'z-global.service',
        reason: 'conflicts with a.service on this machine (Conflicts=a.service); the lower name wins',
      },
    ],
  },
  {
    name: 'units with desired state inactive are returned (to be unloaded) but block nothing',
    machine: me,
    jobs: [job('a-global.service', { global: true, state: 'inactive', conflicts: ['*'] }), job('b.service')],
    schedules: [at('b.service', 'M1')],
    units: ['a-global.service', 'b.service'],
  },
  {
    name: 'an inactive Global unit that does not match is simply absent',
    machine: me,
    jobs: [job('g.service', { global: true, state: 'inactive', metadata: { region: ['us'] } })],
    units: [],
  },
];

describe('planDesiredUnits', () => {
  for (const c of cases) {
    it(c.name, () => {
      const got = planDesiredUnits({ machine: c.machine, jobs: c.jobs, schedules: c.schedules ?? [] });
      expect(got.units.map((u) => u.name)).toEqual(c.units);
      expect(got.excluded).toEqual(c.excluded ?? []);
    });
  }

  it('takes schedules as a map too, and returns the caller’s job objects', () => {
    const a = job('a.service');
    const schedules = new Map([['a.service', at('a.service', 'M1')]]);
    const got = planDesiredUnits({ machine: me, jobs: [a], schedules });
    expect(got.units[0]).toBe(a);
  });
});
