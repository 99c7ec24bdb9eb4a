/**
 * planSchedule, table-driven in the spirit of fleet's engine/scheduler_test.go and
 * engine/reconciler_test.go (TestCalculateClusterTasks), plus the X-Fleet rules of
 * Documentation/unit-files-and-scheduling.md and our deliberate differences.
 */
import { describe, expect, it } from 'vitest';
import { planSchedule } from '../../../src/engine/scheduler.js';
import type { EngineDecision, SchedulerJob } from '../../../src/engine/types.js';
import type { MachineRecord, ScheduleRecord } from '../../../src/registry/types.js';
import { apply, at, job, machine, placements, rng, shuffle } from './fixtures.js';

interface Case {
  name: string;
  jobs: SchedulerJob[];
  machines: MachineRecord[];
  schedules?: ScheduleRecord[];
  want: EngineDecision[];
}

const LONG_A = 'aaaaaaaa11112222333344445555aaaa';
const LONG_B = 'bbbbbbbb11112222333344445555bbbb';
const GONE = '1a2b3c4d5e6f77778888999900001111';

const least = (n: number) =>
  `desired state is launched: least-loaded eligible machine (${n} unit${n === 1 ? '' : 's'})`;
const sched = (name: string, machineID: string, reason = least(0)): EngineDecision => ({
  type: 'schedule',
  name,
  machineID,
  reason,
});
const unsched = (name: string, machineID: string, reason: string): EngineDecision => ({
  type: 'unschedule',
  name,
  machineID,
  reason,
});
const cannot = (name: string, reason: string): EngineDecision => ({ type: 'unschedulable', name, reason });

function run(c: Pick<Case, 'jobs' | 'machines' | 'schedules'>): EngineDecision[] {
  return planSchedule({ jobs: c.jobs, machines: c.machines, schedules: c.schedules ?? [] });
}

function table(cases: Case[]): void {
  for (const c of cases) {
    it(c.name, () => {
      expect(run(c)).toEqual(c.want);
    });
  }
}

describe('planSchedule: basics and least-loaded placement', () => {
  table([
    { name: 'no units, no machines: nothing to do', jobs: [], machines: [], want: [] },
    {
      name: 'one unit, one machine',
      jobs: [job('a.service')],
      machines: [machine('A')],
      want: [sched('a.service', 'A')],
    },
    {
      name: 'a scheduled unit on a live machine is left alone',
      jobs: [job('a.service')],
      machines: [machine('A'), machine('B')],
      schedules: [at('a.service', 'B')],
      want: [],
    },
    {
      name: 'desired state loaded is scheduled like launched',
      jobs: [job('a.service', { state: 'loaded' })],
      machines: [machine('A')],
      want: [sched('a.service', 'A', 'desired state is loaded: least-loaded eligible machine (0 units)')],
    },
    {
      name: 'the least-loaded machine wins; ties go to the lowest machine ID',
      jobs: [job('x.service'), job('a1.service'), job('a2.service'), job('b1.service'), job('c1.service')],
      machines: [machine('C'), machine('A'), machine('B')],
      schedules: [at('a1.service', 'A'), at('a2.service', 'A'), at('b1.service', 'B'), at('c1.service', 'C')],
      want: [sched('x.service', 'B', least(1))],
    },
    {
      name: 'machine IDs compare as strings (a10 < b)',
      jobs: [job('x.service')],
      machines: [machine('b'), machine('a10')],
      want: [sched('x.service', 'a10')],
    },
    {
      name: 'a batch spreads: each placement updates the in-memory load',
      jobs: ['a', 'b', 'c', 'd', 'e'].map((n) => job(`${n}.service`)),
      machines: [machine('B'), machine('A')],
      want: [
        sched('a.service', 'A'),
        sched('b.service', 'B'),
        sched('c.service', 'A', least(1)),
        sched('d.service', 'B', least(1)),
        sched('e.service', 'A', least(2)),
      ],
    },
    {
      name: 'Global units count in machine load (fleet agent unit set)',
      jobs: [job('g.service', { global: true, metadata: { role: ['edge'] } }), job('x.service')],
      machines: [machine('A', { role: 'edge' }), machine('B', { role: 'core' })],
      want: [sched('x.service', 'B')],
    },
    {
      name: 'a Global unit with desired state inactive does not count',
      jobs: [
        job('g.service', { global: true, state: 'inactive', metadata: { role: ['edge'] } }),
        job('x.service'),
      ],
      machines: [machine('A', { role: 'edge' }), machine('B', { role: 'core' })],
      want: [sched('x.service', 'A')],
    },
    {
      name: 'Global units are never scheduled by the engine',
      jobs: [job('g.service', { global: true }), job('h.service', { global: true, state: 'loaded' })],
      machines: [machine('A'), machine('B')],
      want: [],
    },
    {
      name: 'a schedule record for a Global unit is removed',
      jobs: [job('g.service', { global: true })],
      machines: [machine('A')],
      schedules: [at('g.service', 'A')],
      want: [
        unsched(
          'g.service',
          'A',
          'Global units run on every matching machine; the engine does not place them',
        ),
      ],
    },
  ]);
});

describe('planSchedule: desired state inactive', () => {
  table([
    {
      name: 'an inactive unit is never scheduled',
      jobs: [job('a.service', { state: 'inactive' })],
      machines: [machine('A')],
      want: [],
    },
    {
      name: 'a scheduled unit whose desired state became inactive is unscheduled',
      jobs: [job('a.service', { state: 'inactive' })],
      machines: [machine('A')],
      schedules: [at('a.service', 'A')],
      want: [unsched('a.service', 'A', 'desired state is inactive')],
    },
    {
      name: 'a stale "why not placed" record of an inactive unit is forgotten',
      jobs: [job('a.service', { state: 'inactive' })],
      machines: [machine('A')],
      schedules: [at('a.service', undefined, 'no machine matches MachineMetadata region=eu')],
      want: [{ type: 'forget', name: 'a.service', reason: 'desired state is inactive' }],
    },
    {
      name: 'records of destroyed units are removed',
      jobs: [],
      machines: [machine('A')],
      schedules: [at('gone.service', 'A'), at('never.service', undefined, 'MachineID x matches no machine')],
      want: [
        unsched('gone.service', 'A', 'unit no longer exists'),
        { type: 'forget', name: 'never.service', reason: 'unit no longer exists' },
      ],
    },
  ]);
});

describe('planSchedule: machine loss and stickiness', () => {
  table([
    {
      name: 'the unit of a machine that went away is moved in the same pass',
      jobs: [job('a.service')],
      machines: [machine(LONG_A)],
      schedules: [at('a.service', GONE)],
      want: [unsched('a.service', GONE, 'target machine 1a2b3c4d... went away'), sched('a.service', LONG_A)],
    },
    {
      name: 'with no machine left the unit is unscheduled and says why',
      jobs: [job('a.service')],
      machines: [],
      schedules: [at('a.service', GONE)],
      want: [
        unsched('a.service', GONE, 'target machine 1a2b3c4d... went away'),
        cannot('a.service', 'no machines in the cluster'),
      ],
    },
    {
      name: 'no machines in the cluster',
      jobs: [job('a.service'), job('b.service', { state: 'loaded' })],
      machines: [],
      want: [
        cannot('a.service', 'no machines in the cluster'),
        cannot('b.service', 'no machines in the cluster'),
      ],
    },
    {
      name: 'a machine joining moves nothing (TestDynamicClusterNewMemberUnitMigration)',
      jobs: ['a', 'b', 'c', 'd'].map((n) => job(`${n}.service`)),
      machines: [machine('A'), machine('B'), machine('C')],
      schedules: [at('a.service', 'A'), at('b.service', 'A'), at('c.service', 'B'), at('d.service', 'B')],
      want: [],
    },
    {
      name: 'only the lost machine’s units move; the others stay',
      jobs: ['a', 'b', 'c'].map((n) => job(`${n}.service`)),
      machines: [machine('A'), machine('C')],
      schedules: [at('a.service', 'A'), at('b.service', 'B'), at('c.service', 'B')],
      want: [
        unsched('b.service', 'B', 'target machine B went away'),
        unsched('c.service', 'B', 'target machine B went away'),
        sched('b.service', 'C'),
        sched('c.service', 'A', least(1)),
      ],
    },
  ]);
});

describe('planSchedule: MachineID', () => {
  table([
    {
      name: 'full machine ID pins the unit, whatever the load',
      jobs: [job('p.service', { machineID: LONG_B }), job('x.service')],
      machines: [machine(LONG_A), machine(LONG_B)],
      schedules: [at('x.service', LONG_B)],
      want: [sched('p.service', LONG_B, `desired state is launched: MachineID ${LONG_B}`)],
    },
    {
      name: 'the 8-character short ID is accepted (fleet MatchID)',
      jobs: [job('p.service', { machineID: 'bbbbbbbb' })],
      machines: [machine(LONG_A), machine(LONG_B)],
      want: [sched('p.service', LONG_B, 'desired state is launched: MachineID bbbbbbbb')],
    },
    {
      name: 'a shorter prefix is not an ID',
      jobs: [job('p.service', { machineID: 'bbbbbbb' })],
      machines: [machine(LONG_B)],
      want: [cannot('p.service', 'MachineID bbbbbbb matches no machine')],
    },
    {
      name: 'an unknown machine ID: unschedulable, with the reason',
      jobs: [job('p.service', { machineID: '1234abcd' })],
      machines: [machine(LONG_A)],
      want: [cannot('p.service', 'MachineID 1234abcd matches no machine')],
    },
    {
      name: 'the same reason already recorded: no decision (a steady cluster plans nothing)',
      jobs: [job('p.service', { machineID: '1234abcd' })],
      machines: [machine(LONG_A)],
      schedules: [at('p.service', undefined, 'MachineID 1234abcd matches no machine')],
      want: [],
    },
    {
      name: 'a different recorded reason is replaced',
      jobs: [job('p.service', { machineID: '1234abcd' })],
      machines: [machine(LONG_A)],
      schedules: [at('p.service', undefined, 'no machines in the cluster')],
      want: [cannot('p.service', 'MachineID 1234abcd matches no machine')],
    },
    {
      name: 'the pinned machine returns: the unit is placed',
      jobs: [job('p.service', { machineID: 'aaaaaaaa' })],
      machines: [machine(LONG_A)],
      schedules: [at('p.service', undefined, 'MachineID aaaaaaaa matches no machine')],
      want: [sched('p.service', LONG_A, 'desired state is launched: MachineID aaaaaaaa')],
    },
    {
      name: 'MachineID and MachineMetadata both apply',
      jobs: [job('p.service', { machineID: 'aaaaaaaa', metadata: { region: ['eu'] } })],
      machines: [machine(LONG_A, { region: 'us' })],
      want: [cannot('p.service', 'machine aaaaaaaa (MachineID) does not match MachineMetadata region=eu')],
    },
  ]);
});

describe('planSchedule: MachineMetadata', () => {
  const eu = machine('A', { region: 'eu', disk: 'hdd' });
  const us = machine('B', { region: 'us', disk: 'ssd' });
  const euSsd = machine('C', { region: 'eu', disk: 'ssd' });
  table([
    {
      name: 'a matching machine is chosen over a less-loaded one',
      jobs: [job('a.service', { metadata: { region: ['us'] } }), job('x.service')],
      machines: [eu, us],
      schedules: [at('x.service', 'B')],
      want: [sched('a.service', 'B', least(1))],
    },
    {
      name: 'values of one key are OR-ed',
      jobs: [job('a.service', { metadata: { region: ['ap', 'us'] } })],
      machines: [eu, us],
      want: [sched('a.service', 'B')],
    },
    {
      name: 'different keys are AND-ed',
      jobs: [job('a.service', { metadata: { region: ['eu'], disk: ['ssd'] } })],
      machines: [eu, us, euSsd],
      want: [sched('a.service', 'C')],
    },
    {
      name: 'a machine without the key does not match',
      jobs: [job('a.service', { metadata: { rack: ['r1'] } })],
      machines: [eu, us],
      want: [cannot('a.service', 'no machine matches MachineMetadata rack=r1')],
    },
    {
      name: 'no machine matches: the reason names the requirement',
      jobs: [job('a.service', { metadata: { region: ['eu'] } })],
      machines: [us],
      want: [cannot('a.service', 'no machine matches MachineMetadata region=eu')],
    },
    {
      name: 'several keys and values in the reason',
      jobs: [job('a.service', { metadata: { region: ['eu', 'ap'], disk: ['nvme'] } })],
      machines: [eu, us],
      want: [cannot('a.service', 'no machine matches MachineMetadata region=eu|ap, disk=nvme')],
    },
    {
      name: 'machine metadata changed: the unit is moved',
      jobs: [job('a.service', { metadata: { region: ['eu'] } })],
      machines: [machine('A', { region: 'us' }), euSsd],
      schedules: [at('a.service', 'A')],
      want: [
        unsched('a.service', 'A', 'MachineMetadata region=eu no longer matches'),
        sched('a.service', 'C'),
      ],
    },
  ]);
});

describe('planSchedule: MachineOf', () => {
  const peerReason = 'desired state is launched: with its peer db.service (MachineOf)';
  table([
    {
      name: 'a follower goes to its peer’s machine, not the least-loaded one',
      jobs: [job('db.service'), job('app.service', { machineOf: ['db.service'] })],
      machines: [machine('A'), machine('B')],
      schedules: [at('db.service', 'B')],
      want: [sched('app.service', 'B', peerReason)],
    },
    {
      name: 'peers are placed before followers, whatever the names',
      jobs: [job('z-db.service'), job('a-app.service', { machineOf: ['z-db.service'] })],
      machines: [machine('A'), machine('B')],
      want: [
        sched('z-db.service', 'A'),
        sched('a-app.service', 'A', 'desired state is launched: with its peer z-db.service (MachineOf)'),
      ],
    },
    {
      name: 'a peer with desired state inactive makes the follower unschedulable',
      jobs: [job('db.service', { state: 'inactive' }), job('app.service', { machineOf: ['db.service'] })],
      machines: [machine('A')],
      want: [
        cannot('app.service', 'peer db.service (MachineOf) is not scheduled: its desired state is inactive'),
      ],
    },
    {
      name: 'an unschedulable peer makes the follower unschedulable',
      jobs: [
        job('db.service', { metadata: { region: ['eu'] } }),
        job('app.service', { machineOf: ['db.service'] }),
      ],
      machines: [machine('A', { region: 'us' })],
      want: [
        cannot('db.service', 'no machine matches MachineMetadata region=eu'),
        cannot('app.service', 'peer db.service (MachineOf) is not scheduled'),
      ],
    },
    {
      name: 'a peer that does not exist',
      jobs: [job('app.service', { machineOf: ['db.service'] })],
      machines: [machine('A')],
      want: [cannot('app.service', 'peer db.service (MachineOf) is not scheduled: no such unit')],
    },
    {
      name: 'the follower follows its peer when the peer’s machine goes away',
      jobs: [job('db.service'), job('app.service', { machineOf: ['db.service'] }), job('x.service')],
      machines: [machine('A'), machine('B')],
      schedules: [at('db.service', GONE), at('app.service', GONE), at('x.service', 'A')],
      want: [
        unsched('app.service', GONE, 'target machine 1a2b3c4d... went away'),
        unsched('db.service', GONE, 'target machine 1a2b3c4d... went away'),
        sched('db.service', 'B'),
        sched('app.service', 'B', peerReason),
      ],
    },
    {
      name: 'the follower follows its peer when the peer must move (metadata changed)',
      jobs: [
        job('db.service', { metadata: { region: ['eu'] } }),
        job('app.service', { machineOf: ['db.service'] }),
      ],
      machines: [machine('A', { region: 'us' }), machine('B', { region: 'eu' })],
      schedules: [at('db.service', 'A'), at('app.service', 'A')],
      want: [
        unsched('app.service', 'A', 'peer db.service (MachineOf) is no longer on this machine'),
        unsched('db.service', 'A', 'MachineMetadata region=eu no longer matches'),
        sched('db.service', 'B'),
        sched('app.service', 'B', peerReason),
      ],
    },
    {
      name: 'chains of followers move together',
      jobs: [
        job('a.service'),
        job('b.service', { machineOf: ['a.service'] }),
        job('c.service', { machineOf: ['b.service'] }),
      ],
      machines: [machine('A'), machine('B')],
      schedules: [at('a.service', 'Z'), at('b.service', 'Z'), at('c.service', 'Z')],
      want: [
        unsched('a.service', 'Z', 'target machine Z went away'),
        unsched('b.service', 'Z', 'target machine Z went away'),
        unsched('c.service', 'Z', 'target machine Z went away'),
        sched('a.service', 'A'),
        sched('b.service', 'A', 'desired state is launched: with its peer a.service (MachineOf)'),
        sched('c.service', 'A', 'desired state is launched: with its peer b.service (MachineOf)'),
      ],
    },
    {
      name: 'a two-way MachineOf never resolves (fleet documents the deadlock); we say so',
      jobs: [job('a.service', { machineOf: ['b.service'] }), job('b.service', { machineOf: ['a.service'] })],
      machines: [machine('A')],
      want: [
        cannot(
          'b.service',
          'peer a.service (MachineOf) is not scheduled: MachineOf cycle a.service → b.service → a.service',
        ),
        cannot(
          'a.service',
          'peer b.service (MachineOf) is not scheduled: MachineOf cycle a.service → b.service → a.service',
        ),
      ],
    },
    {
      name: 'the peer’s machine fails the follower’s own metadata',
      jobs: [
        job('db.service'),
        job('app.service', { machineOf: ['db.service'], metadata: { region: ['eu'] } }),
      ],
      machines: [machine(LONG_A, { region: 'us' }), machine(LONG_B, { region: 'eu' })],
      schedules: [at('db.service', LONG_A)],
      want: [
        cannot(
          'app.service',
          'peer db.service (MachineOf) is on machine aaaaaaaa..., which does not match MachineMetadata region=eu',
        ),
      ],
    },
    {
      name: 'two peers on different machines',
      jobs: [
        job('a.service'),
        job('b.service'),
        job('app.service', { machineOf: ['a.service', 'b.service'] }),
      ],
      machines: [machine('A'), machine('B')],
      schedules: [at('a.service', 'A'), at('b.service', 'B')],
      want: [cannot('app.service', 'peers a.service and b.service (MachineOf) are on different machines')],
    },
    {
      name: 'two peers on one machine',
      jobs: [
        job('a.service'),
        job('b.service'),
        job('app.service', { machineOf: ['a.service', 'b.service'] }),
      ],
      machines: [machine('A'), machine('B')],
      schedules: [at('a.service', 'B'), at('b.service', 'B')],
      want: [
        sched(
          'app.service',
          'B',
          'desired state is launched: with its peers a.service, b.service (MachineOf)',
        ),
      ],
    },
    {
      name: 'a Global peer: the follower goes to the least-loaded machine running it',
      jobs: [
        job('agent.service', { global: true, metadata: { role: ['worker'] } }),
        job('x.service'),
        job('app.service', { machineOf: ['agent.service'] }),
      ],
      machines: [machine('A', { role: 'worker' }), machine('B', { role: 'worker' }), machine('C')],
      schedules: [at('x.service', 'A')],
      want: [sched('app.service', 'B', 'desired state is launched: with its peer agent.service (MachineOf)')],
    },
  ]);
});

describe('planSchedule: Conflicts', () => {
  table([
    {
      name: 'own pattern: a conflicting instance avoids the less-loaded machine',
      jobs: [
        job('web@1.service', { conflicts: ['web@*.service'] }),
        job('web@2.service', { conflicts: ['web@*.service'] }),
        job('x.service'),
        job('y.service'),
      ],
      machines: [machine('A'), machine('B')],
      schedules: [at('web@1.service', 'A'), at('x.service', 'B'), at('y.service', 'B')],
      want: [sched('web@2.service', 'B', least(2))],
    },
    {
      name: 'symmetric: the other unit’s pattern blocks a unit without Conflicts=',
      jobs: [job('guard.service', { conflicts: ['api*'] }), job('api.service'), job('x.service')],
      machines: [machine('A'), machine('B')],
      schedules: [at('guard.service', 'A'), at('x.service', 'B')],
      want: [sched('api.service', 'B', least(1))],
    },
    {
      name: 'several patterns each count (fleet #1245)',
      jobs: [job('c.service', { conflicts: ['a.service', 'b.service'] }), job('a.service'), job('b.service')],
      machines: [machine('A'), machine('B'), machine('C')],
      schedules: [at('a.service', 'A'), at('b.service', 'B')],
      want: [sched('c.service', 'C')],
    },
    {
      name: 'glob classes and ? work like Go path.Match',
      jobs: [
        job('n.service', { conflicts: ['db[12].service', 'cache?.service'] }),
        job('db1.service'),
        job('cache7.service'),
        job('db3.service'),
      ],
      machines: [machine('A'), machine('B'), machine('C')],
      schedules: [at('db1.service', 'A'), at('cache7.service', 'B'), at('db3.service', 'C')],
      want: [sched('n.service', 'C', least(1))],
    },
    {
      name: 'an invalid pattern never matches',
      jobs: [job('n.service', { conflicts: ['web[.service'] }), job('web[.service')],
      machines: [machine('A')],
      schedules: [at('web[.service', 'A')],
      want: [sched('n.service', 'A', least(1))],
    },
    {
      name: 'a unit never conflicts with itself',
      jobs: [job('web@1.service', { conflicts: ['web@*.service'] })],
      machines: [machine('A')],
      schedules: [at('web@1.service', 'A')],
      want: [],
    },
    {
      name: 'every machine runs a conflicting unit: unschedulable, naming the pattern',
      jobs: ['1', '2', '3'].map((i) => job(`web@${i}.service`, { conflicts: ['web@*.service'] })),
      machines: [machine('A'), machine('B')],
      want: [
        sched('web@1.service', 'A'),
        sched('web@2.service', 'B'),
        cannot('web@3.service', 'every matching machine runs a conflicting unit (Conflicts=web@*.service)'),
      ],
    },
    {
      name: 'one eligible machine with a conflicting unit: named in the reason',
      jobs: [
        job('web@1.service', { conflicts: ['web@*.service'] }),
        job('web@2.service', { conflicts: ['web@*.service'] }),
      ],
      machines: [machine('A')],
      schedules: [at('web@1.service', 'A')],
      want: [
        cannot('web@2.service', 'machine A runs a conflicting unit, web@1.service (Conflicts=web@*.service)'),
      ],
    },
    {
      name: 'blocked by other units’ patterns: the reason names the owner',
      jobs: [
        job('guard.service', { conflicts: ['api*'] }),
        job('guard2.service', { conflicts: ['api*'] }),
        job('api.service'),
      ],
      machines: [machine('A'), machine('B')],
      schedules: [at('guard.service', 'A'), at('guard2.service', 'B')],
      want: [
        cannot(
          'api.service',
          'every matching machine runs a conflicting unit (guard.service has Conflicts=api*)',
        ),
      ],
    },
    {
      name: 'Global units take part in conflicts',
      jobs: [job('g.service', { global: true, conflicts: ['batch*'] }), job('batch.service')],
      machines: [machine('A', { role: 'edge' }), machine('B')],
      want: [
        cannot(
          'batch.service',
          'every matching machine runs a conflicting unit (g.service has Conflicts=batch*)',
        ),
      ],
    },
    {
      name: 'two placed units found conflicting: the higher name moves (the agent runs the lower)',
      jobs: [job('a.service'), job('b.service', { conflicts: ['a.service'] })],
      machines: [machine('A'), machine('B')],
      schedules: [at('a.service', 'A'), at('b.service', 'A')],
      want: [
        unsched('b.service', 'A', 'conflicts with a.service on this machine (Conflicts=a.service)'),
        sched('b.service', 'B'),
      ],
    },
    {
      name: 'a new Global unit with a lower name pushes a conflicting placed unit away',
      jobs: [job('a-global.service', { global: true, conflicts: ['z.service'] }), job('z.service')],
      machines: [machine('A', { role: 'x' }), machine('B')],
      schedules: [at('z.service', 'A')],
      want: [
        unsched(
          'z.service',
          'A',
          'conflicts with a-global.service on this machine (a-global.service has Conflicts=z.service)',
        ),
        cannot(
          'z.service',
          'every matching machine runs a conflicting unit (a-global.service has Conflicts=z.service)',
        ),
      ],
    },
    {
      name: 'a placed unit with a lower name than a conflicting Global stays (the Global skips that machine)',
      jobs: [
        job('a.service'),
        job('z-global.service', { global: true, conflicts: ['a.service'] }),
        job('x.service'),
      ],
      machines: [machine('A'), machine('B')],
      schedules: [at('a.service', 'A')],
      // z-global runs on B only, so A holds 1 unit (a) and B holds 1 (z-global): tie → A.
      want: [sched('x.service', 'A', least(1))],
    },
    {
      name: 'conflicting Global units: only the lower name runs, so only it counts in load',
      jobs: [
        job('g1.service', { global: true, conflicts: ['g2.service'] }),
        job('g2.service', { global: true }),
        job('h.service', { global: true, metadata: { role: ['b'] } }),
        job('x.service'),
      ],
      machines: [machine('A'), machine('B', { role: 'b' })],
      want: [sched('x.service', 'A', least(1))],
    },
  ]);
});

describe('planSchedule: Replaces', () => {
  table([
    {
      name: 'a replacing unit lands on the replaced unit’s machine and evicts it in the same pass',
      jobs: [
        job('new.service', { replaces: ['old.service'] }),
        job('old.service'),
        job('x.service'),
        job('y.service'),
      ],
      machines: [machine('A'), machine('B')],
      schedules: [at('old.service', 'A'), at('x.service', 'B'), at('y.service', 'B')],
      want: [
        sched('new.service', 'A', least(1)),
        unsched('old.service', 'A', 'replaced by new.service (Replaces=old.service)'),
        sched('old.service', 'B', least(2)),
      ],
    },
    {
      name: 'both already on one machine: the replaced unit is evicted to the least-loaded other machine',
      jobs: [job('new.service', { replaces: ['old*'] }), job('old.service')],
      machines: [machine('A'), machine('B'), machine('C')],
      schedules: [at('new.service', 'A'), at('old.service', 'A')],
      want: [
        unsched('old.service', 'A', 'replaced by new.service (Replaces=old*)'),
        sched('old.service', 'B'),
      ],
    },
    {
      name: 'circular replaces are ignored',
      jobs: [job('a.service', { replaces: ['b.service'] }), job('b.service', { replaces: ['a.service'] })],
      machines: [machine('A'), machine('B')],
      schedules: [at('a.service', 'A'), at('b.service', 'A')],
      want: [],
    },
    {
      name: 'no other machine: the replaced unit is unschedulable, and says why',
      jobs: [job('new.service', { replaces: ['old.service'] }), job('old.service')],
      machines: [machine('A')],
      schedules: [at('new.service', 'A'), at('old.service', 'A')],
      want: [
        unsched('old.service', 'A', 'replaced by new.service (Replaces=old.service)'),
        cannot(
          'old.service',
          'machine A runs a unit that replaces it (new.service has Replaces=old.service)',
        ),
      ],
    },
    {
      name: 'the evicted unit keeps its own rules (fleet did not check them)',
      jobs: [
        job('new.service', { replaces: ['old.service'] }),
        job('old.service', { metadata: { region: ['eu'] } }),
      ],
      machines: [machine('A', { region: 'eu' }), machine('B', { region: 'us' })],
      schedules: [at('new.service', 'A'), at('old.service', 'A')],
      want: [
        unsched('old.service', 'A', 'replaced by new.service (Replaces=old.service)'),
        cannot(
          'old.service',
          'machine A runs a unit that replaces it (new.service has Replaces=old.service)',
        ),
      ],
    },
    {
      name: 'followers of an evicted unit move with it',
      jobs: [
        job('new.service', { replaces: ['old.service'] }),
        job('old.service'),
        job('side.service', { machineOf: ['old.service'] }),
      ],
      machines: [machine('A'), machine('B')],
      schedules: [at('new.service', 'A'), at('old.service', 'A'), at('side.service', 'A')],
      want: [
        unsched('old.service', 'A', 'replaced by new.service (Replaces=old.service)'),
        unsched('side.service', 'A', 'peer old.service (MachineOf) is no longer on this machine'),
        sched('old.service', 'B'),
        sched('side.service', 'B', 'desired state is launched: with its peer old.service (MachineOf)'),
      ],
    },
  ]);
});

describe('planSchedule: determinism and multi-pass behaviour', () => {
  const jobs = [
    ...Array.from({ length: 12 }, (_, i) => job(`plain-${i}.service`)),
    ...Array.from({ length: 4 }, (_, i) => job(`web@${i}.service`, { conflicts: ['web@*.service'] })),
    job('db.service', { metadata: { disk: ['ssd'] } }),
    job('app.service', { machineOf: ['db.service'] }),
    job('g.service', { global: true, metadata: { disk: ['ssd'] } }),
    job('off.service', { state: 'inactive' }),
  ];
  const machines = [
    machine('m3'),
    machine('m1', { disk: 'ssd' }),
    machine('m2'),
    machine('m4', { disk: 'ssd' }),
  ];

  it('the same input in any order gives the same plan', () => {
    const want = run({ jobs, machines });
    const random = rng(42);
    for (let i = 0; i < 20; i++) {
      expect(run({ jobs: shuffle(jobs, random), machines: shuffle(machines, random) })).toEqual(want);
    }
  });

  it('a second pass over the applied plan plans nothing; schedules in map or list form agree', () => {
    const records = new Map<string, ScheduleRecord>();
    apply(records, run({ jobs, machines }));
    expect(planSchedule({ jobs, machines, schedules: records })).toEqual([]);
    expect(planSchedule({ jobs, machines, schedules: [...records.values()] })).toEqual([]);
    const placed = placements(records);
    expect(placed['app.service']).toBe(placed['db.service']);
    expect(Object.keys(placed)).not.toContain('g.service');
    expect(Object.keys(placed)).not.toContain('off.service');
    const webs = ['web@0.service', 'web@1.service', 'web@2.service', 'web@3.service'].map((n) => placed[n]);
    expect(new Set(webs).size).toBe(4);
  });

  it('a machine leaving moves only its units; rejoining moves nothing back', () => {
    const records = new Map<string, ScheduleRecord>();
    apply(records, run({ jobs, machines }));
    const before = placements(records);
    const survivors = machines.filter((m) => m.id !== 'm2');
    const plan = planSchedule({ jobs, machines: survivors, schedules: records });
    const moved = plan.filter((d) => d.type === 'unschedule').map((d) => d.name);
    expect(moved).toEqual(
      Object.entries(before)
        .filter(([, m]) => m === 'm2')
        .map(([n]) => n),
    );
    expect(moved.length).toBeGreaterThan(0);
    for (const d of plan.filter((x) => x.type === 'unschedule')) {
      expect(d.reason).toBe('target machine m2 went away');
    }
    apply(records, plan);
    const after = placements(records);
    for (const [name, m] of Object.entries(before)) if (m !== 'm2') expect(after[name]).toBe(m);
    expect(Object.values(after)).not.toContain('m2');
    // Rejoining: nothing placed moves; only units that had nowhere to go (a 4th web@ instance on
    // 3 machines) are placed.
    const unplaced = jobs
      .filter((j) => !j.requirements.global && j.desiredState !== 'inactive' && after[j.name] === undefined)
      .map((j) => j.name);
    expect(unplaced).toEqual(['web@1.service']);
    expect(records.get('web@1.service')?.reason).toBe(
      'every matching machine runs a conflicting unit (Conflicts=web@*.service)',
    );
    const rejoin = planSchedule({ jobs, machines, schedules: records });
    expect(rejoin).toEqual([{ type: 'schedule', name: 'web@1.service', machineID: 'm2', reason: least(0) }]);
  });
});
