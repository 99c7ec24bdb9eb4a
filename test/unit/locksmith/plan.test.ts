/** The reboot manager's planner: one observation in, one step out, table-driven. */
import { describe, expect, it } from 'vitest';
import { planStep, type Observed } from '../../../src/locksmith/plan.js';

const base: Observed = {
  strategy: 'etcd-lock',
  cluster: true,
  needReboot: true,
  untilWindow: 0,
  bootId: 'boot-2',
  available: true,
  unschedulable: false,
  healthy: true,
  pending: [],
  drainTimeoutMs: 60_000,
};
const o = (x: Partial<Observed>): Observed => ({ ...base, ...x });

const cases: [string, Observed, string, RegExp?][] = [
  ['nothing to do without a pending reboot', o({ needReboot: false }), 'wait', /no reboot needed/],
  ['strategy off never reboots', o({ strategy: 'off' }), 'wait', /REBOOT_STRATEGY=off/],
  [
    'outside the window: wait, with the time to go',
    o({ untilWindow: 5000 }),
    'wait',
    /outside the reboot window/,
  ],
  ['etcd-lock: take the lock first', o({}), 'lock'],
  ['etcd-lock: lock busy waits', o({ available: false }), 'wait', /reboot lock busy/],
  ['best-effort on a cluster takes the lock', o({ strategy: 'best-effort' }), 'lock'],
  ['best-effort on one machine drains at once', o({ strategy: 'best-effort', cluster: false }), 'drain'],
  ['reboot strategy: no lock, drain', o({ strategy: 'reboot' }), 'drain'],
  ['holding the lock: drain', o({ holding: { bootId: 'boot-2' } }), 'drain'],
  [
    'draining with units pending: wait and name them',
    o({ holding: { bootId: 'boot-2' }, unschedulable: true, pending: ['a.service'], drainingMs: 1000 }),
    'wait',
    /waiting for a\.service/,
  ],
  [
    'drained: reboot',
    o({ holding: { bootId: 'boot-2' }, unschedulable: true, pending: [], drainingMs: 1000 }),
    'reboot',
    /runs elsewhere/,
  ],
  [
    'drain timeout: reboot anyway, naming what did not move',
    o({ holding: { bootId: 'boot-2' }, unschedulable: true, pending: ['a.service'], drainingMs: 60_000 }),
    'reboot',
    /drain timeout \(60 s\) passed with 1 unit\(s\) not yet running elsewhere \(a\.service\)/,
  ],
  [
    'the window closing during a drain does not stop it',
    o({ holding: { bootId: 'boot-2' }, unschedulable: true, untilWindow: 9999, drainingMs: 10 }),
    'reboot',
  ],
  [
    'back from the reboot (boot ID changed) but not healthy: keep the lock',
    o({ holding: { bootId: 'boot-1' }, healthy: false, needReboot: false, unschedulable: true }),
    'wait',
    /waiting until the agent is healthy/,
  ],
  [
    'back from the reboot and healthy: release',
    o({ holding: { bootId: 'boot-1' }, needReboot: false, unschedulable: true }),
    'release',
  ],
  [
    'back and healthy even with strategy off: release',
    o({ strategy: 'off', holding: { bootId: 'boot-1' }, needReboot: false }),
    'release',
  ],
  [
    'a stale drain flag without a reboot pending is cleared',
    o({ needReboot: false, unschedulable: true }),
    'undrain',
  ],
  [
    'etcd-lock: a lock held from before without a drain is released (locksmithd unlock loop)',
    o({ needReboot: false, holding: { bootId: 'boot-2' } }),
    'release',
  ],
  [
    'reboot strategy: a lock taken by hand is left alone',
    o({ strategy: 'reboot', needReboot: false, holding: { bootId: 'boot-2' } }),
    'wait',
  ],
];

describe('planStep', () => {
  for (const [name, obs, type, reason] of cases) {
    it(name, () => {
      const step = planStep(obs);
      expect(step.type).toBe(type);
      if (reason) expect(step.reason).toMatch(reason);
    });
  }
  it('outside the window passes on how long to wait', () => {
    expect(planStep(o({ untilWindow: 5000 }))).toMatchObject({ ms: 5000 });
  });
});
