/** pendingUnits: what keeps a draining machine from rebooting, from one registry snapshot. */
import { describe, expect, it } from 'vitest';
import { pendingUnits, unitsOn } from '../../../src/locksmith/drain.js';
import type { Snapshot } from '../../../src/registry/registry.js';
import type { DesiredState, ScheduleRecord, UnitStateRecord } from '../../../src/registry/types.js';

function snap(
  jobs: [string, DesiredState][],
  schedules: ScheduleRecord[],
  states: [string, string, string][] = [],
): Snapshot {
  const s: Snapshot = {
    revision: 1,
    jobs: new Map(jobs.map(([name, desiredState]) => [name, { name, hash: 'h', desiredState }])),
    schedules: new Map(schedules.map((r) => [r.name, r])),
    machines: new Map(),
    states: new Map(),
    bodies: new Map(),
  };
  for (const [name, machineID, activeState] of states) {
    const rec: UnitStateRecord = {
      name,
      machineID,
      hash: 'h',
      loadState: 'loaded',
      activeState,
      subState: '',
    };
    let m = s.states.get(name);
    if (!m) s.states.set(name, (m = new Map<string, UnitStateRecord>()));
    m.set(machineID, rec);
  }
  return s;
}

describe('pendingUnits', () => {
  const moved = new Set(['a.service']);
  it.each<[string, Snapshot, string[]]>([
    [
      'still scheduled here',
      snap([['a.service', 'launched']], [{ name: 'a.service', machineID: 'me' }]),
      ['a.service'],
    ],
    ['between unschedule and schedule', snap([['a.service', 'launched']], []), ['a.service']],
    [
      'placed elsewhere, not running there yet',
      snap(
        [['a.service', 'launched']],
        [{ name: 'a.service', machineID: 'm2' }],
        [['a.service', 'm2', 'activating']],
      ),
      ['a.service'],
    ],
    [
      'placed elsewhere and active there, but still running here',
      snap(
        [['a.service', 'launched']],
        [{ name: 'a.service', machineID: 'm2' }],
        [
          ['a.service', 'm2', 'active'],
          ['a.service', 'me', 'active'],
        ],
      ),
      ['a.service'],
    ],
    [
      'active elsewhere and stopped here: done',
      snap(
        [['a.service', 'launched']],
        [{ name: 'a.service', machineID: 'm2' }],
        [
          ['a.service', 'm2', 'active'],
          ['a.service', 'me', 'inactive'],
        ],
      ),
      [],
    ],
    [
      'nowhere to go (unschedulable record): does not hold the reboot up',
      snap([['a.service', 'launched']], [{ name: 'a.service', reason: 'MachineID me' }]),
      [],
    ],
    [
      'a loaded unit only needs to be loaded elsewhere',
      snap(
        [['a.service', 'loaded']],
        [{ name: 'a.service', machineID: 'm2' }],
        [['a.service', 'm2', 'inactive']],
      ),
      [],
    ],
    [
      'Global units (no schedule record) stay and do not count',
      snap([['g.service', 'launched']], [], [['g.service', 'me', 'active']]),
      [],
    ],
    [
      'inactive units do not count',
      snap([['a.service', 'inactive']], [{ name: 'a.service', machineID: 'me' }]),
      [],
    ],
  ])('%s', (_name, s, want) => {
    expect(pendingUnits(s, 'me', moved)).toEqual(want);
  });

  it('unitsOn lists what a drain is about to move', () => {
    const s = snap(
      [
        ['a.service', 'launched'],
        ['b.service', 'launched'],
      ],
      [
        { name: 'a.service', machineID: 'me' },
        { name: 'b.service', machineID: 'm2' },
      ],
    );
    expect([...unitsOn(s, 'me')]).toEqual(['a.service']);
  });
});
