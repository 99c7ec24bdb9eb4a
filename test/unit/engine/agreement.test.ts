/**
 * Engine and agent agree: on random clusters (conflicting templates, Global units with and without
 * metadata and Conflicts=, MachineOf pairs, Replaces=, inactive units), once the engine's plan is
 * applied:
 *   - a second pass plans nothing (one pass reaches a fixed point, so a steady cluster is quiet);
 *   - no placed unit breaks a rule on its machine;
 *   - every agent keeps every unit the engine placed on it (planDesiredUnits drops only Global
 *     units), so the engine never places a unit the agent would refuse to run.
 */
import { describe, expect, it } from 'vitest';
import { planDesiredUnits } from '../../../src/agent/plan-desired.js';
import {
  GlobCache,
  conflictBetween,
  machineIDMatches,
  metadataMatches,
} from '../../../src/engine/constraints.js';
import { planSchedule } from '../../../src/engine/scheduler.js';
import type { SchedulerJob } from '../../../src/engine/types.js';
import type { MachineRecord, ScheduleRecord } from '../../../src/registry/types.js';
import { apply, job, machine, rng } from './fixtures.js';

function randomCluster(seed: number): { jobs: SchedulerJob[]; machines: MachineRecord[] } {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const regions = ['eu', 'us'];
  const machines = Array.from({ length: 2 + Math.floor(r() * 6) }, (_, i) =>
    machine(`m${i}${'0'.repeat(10)}`, { region: pick(regions), ...(r() < 0.5 ? { disk: 'ssd' } : {}) }),
  );
  const jobs: SchedulerJob[] = [];
  const n = 5 + Math.floor(r() * 25);
  for (let i = 0; i < n; i++) {
    const roll = r();
    const state = r() < 0.1 ? 'inactive' : r() < 0.3 ? 'loaded' : 'launched';
    if (roll < 0.3) jobs.push(job(`web@${i}.service`, { state, conflicts: ['web@*.service'] }));
    else if (roll < 0.4)
      jobs.push(
        job(`g${i}.service`, {
          state,
          global: true,
          ...(r() < 0.5 ? { metadata: { region: [pick(regions)] } } : {}),
          ...(r() < 0.3 ? { conflicts: ['svc*'] } : {}),
        }),
      );
    else if (roll < 0.5 && i > 0) jobs.push(job(`side${i}.service`, { state, machineOf: [pick(jobs).name] }));
    else if (roll < 0.6) jobs.push(job(`svc${i}.service`, { state, metadata: { region: [pick(regions)] } }));
    else if (roll < 0.65) jobs.push(job(`new${i}.service`, { state, replaces: ['svc*'] }));
    else if (roll < 0.7)
      jobs.push(job(`pin${i}.service`, { state, machineID: pick(machines).id.slice(0, 8) }));
    else jobs.push(job(`svc${i}.service`, { state }));
  }
  return { jobs, machines };
}

describe('engine and agent agree on random clusters', () => {
  it(
    '300 random clusters: fixed point, rules hold, agents keep what the engine placed',
    { timeout: 60_000 },
    () => {
      const glob = new GlobCache();
      const match = (p: string, s: string) => glob.match(p, s);
      for (let seed = 1; seed <= 300; seed++) {
        const { jobs, machines } = randomCluster(seed);
        const records = new Map<string, ScheduleRecord>();
        apply(records, planSchedule({ jobs, machines, schedules: records }));
        expect(planSchedule({ jobs, machines, schedules: records }), `seed ${seed}`).toEqual([]);

        const byName = new Map(jobs.map((j) => [j.name, j]));
        for (const m of machines) {
          const desired = planDesiredUnits({ machine: m, jobs, schedules: records });
          const runsHere = new Set(
            desired.units.filter((u) => u.desiredState !== 'inactive').map((u) => u.name),
          );
          for (const x of desired.excluded) {
            expect(
              byName.get(x.name)?.requirements.global,
              `seed ${seed}: agent drops ${x.name}: ${x.reason}`,
            ).toBe(true);
          }
          const here = jobs.filter((j) => records.get(j.name)?.machineID === m.id);
          for (const j of here) {
            const what = `seed ${seed} ${j.name} on ${m.id}`;
            expect(j.desiredState, what).not.toBe('inactive');
            expect(j.requirements.global, what).toBe(false);
            expect(metadataMatches(j.requirements.metadata, m.metadata), what).toBe(true);
            if (j.requirements.machineID !== undefined) {
              expect(machineIDMatches(j.requirements.machineID, m.id), what).toBe(true);
            }
            // Peers (placed or Global) run on the same machine.
            for (const p of j.requirements.machineOf)
              expect(runsHere.has(p), `${what}: peer ${p}`).toBe(true);
            for (const k of here) {
              const rulesJ = { name: j.name, conflicts: j.requirements.conflicts, replaces: [] };
              const rulesK = { name: k.name, conflicts: k.requirements.conflicts, replaces: [] };
              expect(conflictBetween(rulesJ, rulesK, match), `${what} / ${k.name}`).toBeUndefined();
            }
          }
        }
      }
    },
  );
});
