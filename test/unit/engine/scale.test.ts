/**
 * Scale: 10,000 units on 1,000 machines in one pass. No timing assertion (a benchmark measures);
 * the time is printed. The mix exercises every index: plain units, metadata, a 1,000-instance
 * template with Conflicts= on its own glob, MachineOf pairs, Global units and inactive units.
 */
import { describe, expect, it } from 'vitest';
import { planSchedule } from '../../../src/engine/scheduler.js';
import type { SchedulerJob } from '../../../src/engine/types.js';
import type { ScheduleRecord } from '../../../src/registry/types.js';
import { apply, job, machine, placements } from './fixtures.js';

/** Wall and CPU time of `fn` (CPU time is the honest number on a busy test machine). */
function timed<T>(fn: () => T): { value: T; wall: number; text: string } {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const value = fn();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return {
    value,
    wall,
    text: `${wall.toFixed(1)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(1)} ms CPU`,
  };
}

const MACHINES = 1_000;
const UNITS = 10_000;

function cluster() {
  const machines = Array.from({ length: MACHINES }, (_, i) =>
    machine(`${i.toString(16).padStart(8, '0')}${'0'.repeat(24)}`, {
      region: ['eu', 'us', 'ap'][i % 3] ?? 'eu',
      disk: i % 4 === 0 ? 'ssd' : 'hdd',
    }),
  );
  const jobs: SchedulerJob[] = [];
  for (let i = 0; jobs.length < UNITS - 1_000 - 1_000 - 5 - 1; i++) {
    jobs.push(
      i % 7 === 0
        ? job(`svc-${i}.service`, { metadata: { region: ['eu', 'us'], disk: ['ssd'] } })
        : job(`svc-${i}.service`),
    );
  }
  for (let i = 0; i < 1_000; i++) jobs.push(job(`web@${i}.service`, { conflicts: ['web@*.service'] }));
  for (let i = 0; i < 500; i++) {
    jobs.push(job(`db-${i}.service`));
    jobs.push(job(`app-${i}.service`, { machineOf: [`db-${i}.service`] }));
  }
  for (let i = 0; i < 5; i++)
    jobs.push(job(`global-${i}.service`, { global: true, metadata: { disk: ['ssd'] } }));
  jobs.push(job('off.service', { state: 'inactive' }));
  return { machines, jobs };
}

describe('planSchedule at scale', () => {
  it(
    'plans 10,000 units on 1,000 machines in one pass, and a second pass plans nothing',
    { timeout: 60_000 },
    () => {
      const { machines, jobs } = cluster();
      expect(jobs.length).toBe(UNITS);

      const first = timed(() => planSchedule({ jobs, machines, schedules: [] }));
      const plan = first.value;
      const placed = plan.filter((d) => d.type === 'schedule').length;
      console.log(
        `planSchedule: ${jobs.length} units × ${machines.length} machines → ${placed} placements in ${first.text}` +
          ` (${Math.round((placed / first.wall) * 1000)} placements/s wall)`,
      );

      // Every non-global, non-inactive unit is placed (the web@ template fits: 1,000 machines).
      expect(placed).toBe(UNITS - 5 - 1);
      expect(plan.filter((d) => d.type !== 'schedule')).toEqual([]);

      const records = new Map<string, ScheduleRecord>();
      apply(records, plan);
      const where = placements(records);
      const webMachines = new Set(Array.from({ length: 1_000 }, (_, i) => where[`web@${i}.service`]));
      expect(webMachines.size).toBe(1_000);
      for (let i = 0; i < 500; i++) expect(where[`app-${i}.service`]).toBe(where[`db-${i}.service`]);

      // Spread: machines that only ever receive unconstrained units (hdd ones) stay within one unit
      // of each other; ssd machines also carry the 5 Global units and every ssd-bound unit.
      const load = new Map<string, number>(machines.map((m) => [m.id, m.metadata.disk === 'ssd' ? 5 : 0]));
      for (const m of Object.values(where)) load.set(m, (load.get(m) ?? 0) + 1);
      const hdd = machines.filter((m) => m.metadata.disk === 'hdd').map((m) => load.get(m.id) ?? 0);
      const all = [...load.values()];
      console.log(
        `load per machine: ${Math.min(...all)}..${Math.max(...all)} (hdd machines ${Math.min(...hdd)}..${Math.max(...hdd)})`,
      );
      expect(Math.max(...hdd) - Math.min(...hdd)).toBeLessThanOrEqual(1);

      const again = timed(() => planSchedule({ jobs, machines, schedules: records }));
      console.log(`planSchedule steady state (no changes): ${again.text}`);
      expect(again.value).toEqual([]);

      // Lose 10 machines: only their units move, in one pass.
      const lost = new Set(machines.slice(0, 10).map((m) => m.id));
      const lossPlan = timed(() =>
        planSchedule({ jobs, machines: machines.filter((m) => !lost.has(m.id)), schedules: records }),
      );
      const failover = lossPlan.value;
      console.log(`planSchedule after losing 10 machines: ${failover.length} decisions in ${lossPlan.text}`);
      const unscheduled = failover.filter((d) => d.type === 'unschedule');
      expect(unscheduled.length).toBe(Object.values(where).filter((m) => lost.has(m)).length);
      // 1,000 web@ instances no longer fit on 990 machines: the surplus says why.
      const stuck = failover.filter((d) => d.type === 'unschedulable');
      expect(stuck.length).toBe(10);
      for (const d of stuck) {
        expect(d.name).toMatch(/^web@/);
        expect(d.reason).toBe('every matching machine runs a conflicting unit (Conflicts=web@*.service)');
      }
      expect(failover.filter((d) => d.type === 'schedule').length).toBe(unscheduled.length - stuck.length);
    },
  );
});
