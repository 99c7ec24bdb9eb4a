/**
 * planSchedule with an unschedulable (draining) machine: its placed units move to machines able to
 * run them, honouring Conflicts=, MachineOf= and MachineID=; Global units stay; nothing new goes
 * there; and one pass is a fixed point.
 */
import { describe, expect, it } from 'vitest';
import { planSchedule } from '../../../src/engine/scheduler.js';
import type { EngineDecision, SchedulerJob } from '../../../src/engine/types.js';
import type { MachineRecord, ScheduleRecord } from '../../../src/registry/types.js';
import { apply, at, job, machine } from './fixtures.js';

const draining = (id: string): MachineRecord => ({ ...machine(id), unschedulable: true });
const LEAVE = 'its machine is unschedulable (draining for a reboot)';

function plan(
  jobs: SchedulerJob[],
  machines: MachineRecord[],
  schedules: ScheduleRecord[],
): EngineDecision[] {
  return planSchedule({ jobs, machines, schedules });
}

describe('planSchedule: unschedulable machines', () => {
  it('moves a placed unit off a draining machine to the least-loaded other one', () => {
    const out = plan([job('a.service')], [draining('A'), machine('B'), machine('C')], [at('a.service', 'A')]);
    expect(out).toEqual([
      { type: 'unschedule', name: 'a.service', machineID: 'A', reason: LEAVE },
      {
        type: 'schedule',
        name: 'a.service',
        machineID: 'B',
        reason: 'desired state is launched: least-loaded eligible machine (0 units)',
      },
    ]);
  });

  it('places nothing new on a draining machine, even when it is the least loaded', () => {
    const jobs = [job('a.service'), job('b.service'), job('new.service')];
    const out = plan(jobs, [draining('A'), machine('B')], [at('a.service', 'B'), at('b.service', 'B')]);
    expect(out).toEqual([
      {
        type: 'schedule',
        name: 'new.service',
        machineID: 'B',
        reason: 'desired state is launched: least-loaded eligible machine (2 units)',
      },
    ]);
  });

  it('keeps Global units on a draining machine (they are not placed by the engine)', () => {
    const out = plan([job('g.service', { global: true })], [draining('A'), machine('B')], []);
    expect(out).toEqual([]);
  });

  it('honours Conflicts=: a moving unit skips a machine that runs a unit it conflicts with', () => {
    const jobs = [
      job('web@1.service', { conflicts: ['web@*'] }),
      job('web@2.service', { conflicts: ['web@*'] }),
    ];
    const out = plan(
      jobs,
      [draining('A'), machine('B'), machine('C')],
      [at('web@1.service', 'A'), at('web@2.service', 'B')],
    );
    expect(out.filter((d) => d.type === 'schedule')).toEqual([
      expect.objectContaining({ name: 'web@1.service', machineID: 'C' }),
    ]);
  });

  it('a conflicting unit with nowhere else to go becomes unschedulable instead of staying', () => {
    const jobs = [
      job('web@1.service', { conflicts: ['web@*'] }),
      job('web@2.service', { conflicts: ['web@*'] }),
    ];
    const out = plan(
      jobs,
      [draining('A'), machine('B')],
      [at('web@1.service', 'A'), at('web@2.service', 'B')],
    );
    expect(out[0]).toEqual({ type: 'unschedule', name: 'web@1.service', machineID: 'A', reason: LEAVE });
    expect(out[1]).toMatchObject({ type: 'unschedulable', name: 'web@1.service' });
  });

  it('honours MachineOf=: a peer and its follower move together to one machine', () => {
    const jobs = [job('db.service'), job('backup.service', { machineOf: ['db.service'] })];
    const out = plan(
      jobs,
      [draining('A'), machine('B'), machine('C')],
      [at('db.service', 'A'), at('backup.service', 'A'), at('other.service', 'B')],
    );
    const placed = out.filter((d) => d.type === 'schedule');
    expect(placed.map((d) => d.name).sort()).toEqual(['backup.service', 'db.service']);
    const where = new Set(placed.map((d) => (d.type === 'schedule' ? d.machineID : '')));
    expect(where.size).toBe(1);
    expect(where.has('A')).toBe(false);
  });

  it('a follower of a Global peer moves to another machine that runs the Global unit', () => {
    const jobs = [
      job('agent.service', { global: true }),
      job('side.service', { machineOf: ['agent.service'] }),
    ];
    const out = plan(jobs, [draining('A'), machine('B')], [at('side.service', 'A')]);
    expect(out).toEqual([
      { type: 'unschedule', name: 'side.service', machineID: 'A', reason: LEAVE },
      {
        type: 'schedule',
        name: 'side.service',
        machineID: 'B',
        reason: 'desired state is launched: with its peer agent.service (MachineOf)',
      },
    ]);
  });

  it('a unit pinned by MachineID= to the draining machine waits, with a reason naming the drain', () => {
    const out = plan(
      [job('pin.service', { machineID: 'A' })],
      [draining('A'), machine('B')],
      [at('pin.service', 'A')],
    );
    expect(out).toEqual([
      { type: 'unschedule', name: 'pin.service', machineID: 'A', reason: LEAVE },
      {
        type: 'unschedulable',
        name: 'pin.service',
        reason: 'machine A (MachineID) is unschedulable (draining for a reboot)',
      },
    ]);
  });

  it('says so when every machine is draining', () => {
    const out = plan([job('a.service')], [draining('A')], []);
    expect(out).toEqual([
      {
        type: 'unschedulable',
        name: 'a.service',
        reason: 'every machine is unschedulable (draining for a reboot)',
      },
    ]);
  });

  it('one pass is a fixed point, and the units stay put when the machine is schedulable again', () => {
    const jobs = [job('a.service'), job('b.service'), job('c.service', { conflicts: ['b.service'] })];
    const records = new Map<string, ScheduleRecord>([
      ['a.service', at('a.service', 'A')],
      ['b.service', at('b.service', 'A')],
      ['c.service', at('c.service', 'B')],
    ]);
    const ms = [draining('A'), machine('B'), machine('C')];
    apply(records, plan(jobs, ms, [...records.values()]));
    expect(plan(jobs, ms, [...records.values()])).toEqual([]);
    expect([...records.values()].every((r) => r.machineID !== 'A')).toBe(true);
    expect(records.get('b.service')?.machineID).toBe('C'); // not with c.service (Conflicts=)
    // Back from the reboot: sticky placement, nothing moves back.
    expect(plan(jobs, [machine('A'), machine('B'), machine('C')], [...records.values()])).toEqual([]);
  });
});
