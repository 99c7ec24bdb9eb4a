/**
 * A drop-in check: an operator's bash runbook written for fleetctl (submit, start, list-units,
 * list-machines, list-unit-files, stop, destroy, template instances with Conflicts) runs unchanged
 * inside a machine against flotilla, through the `fleetctl` name that cluster.sh installs, and its
 * output is what fleetctl would print (tab-aligned tables, fleetctl's messages).
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import {
  UNIT_DIR,
  allMachines,
  destroyUnits,
  freshCluster,
  inMachine,
  isActive,
  putFile,
  recoverCluster,
  restoreMachines,
  sleepUnit,
  uniq,
  waitFor,
  type ClusterMap,
} from '../support/cluster.js';
import { describeSystemd, machineProject } from '../support/testbed.js';

/** The runbook, as an operator wrote it for fleetctl. $1 = unit file, $2 = template stem. */
const RUNBOOK = String.raw`#!/bin/bash
# Deploy runbook (fleetctl): check the cluster, deploy a service, scale a template, tear down.
set -euo pipefail
cd "$(dirname "$0")"
UNIT=$1
WEB=$2

echo "== machines"
echo "count: $(fleetctl list-machines --no-legend | wc -l)"
fleetctl list-machines

echo "== submit"
fleetctl submit "$UNIT"
fleetctl list-unit-files --no-legend --fields=unit,dstate | grep "^$UNIT"

echo "== start"
fleetctl start "$UNIT"
state=unknown
for i in $(seq 1 20); do
  state=$(fleetctl list-units --no-legend --fields=unit,active | awk -v u="$UNIT" '$1 == u {print $2}')
  [ "$state" = active ] && break
  sleep 1
done
echo "state: $state"
fleetctl list-units --no-legend --fields=unit,active,sub | grep "^$UNIT"

echo "== scale"
fleetctl start "$WEB@1.service" "$WEB@2.service" "$WEB@3.service"
echo "web machines: $(fleetctl list-units --no-legend --fields=unit,machine | grep "^$WEB@" | awk '{print $2}' | sort -u | wc -l)"

echo "== stop"
fleetctl stop "$UNIT"
fleetctl list-unit-files --no-legend --fields=unit,dstate,state | grep "^$UNIT"

echo "== destroy"
fleetctl destroy "$UNIT" "$WEB@1.service" "$WEB@2.service" "$WEB@3.service" "$WEB@.service"
echo "left: $(fleetctl list-unit-files --no-legend | grep -c -e "^$UNIT" -e "^$WEB@" || true)"
echo "== done"
`;

describeSystemd('a fleetctl runbook against a real flotilla cluster', () => {
  let map: ClusterMap;
  const created: string[] = [];
  const m = allMachines[0]!;

  beforeAll(async () => {
    map = await freshCluster();
  }, 180_000);

  afterEach(async () => {
    await recoverCluster(map);
    await destroyUnits(allMachines, created.splice(0));
  }, 180_000);

  afterAll(async () => {
    await restoreMachines();
  }, 120_000);

  it('runs unchanged with fleetctl = flotilla and prints what fleetctl prints', async () => {
    const stem = uniq('runbook');
    const unit = `${stem}.service`;
    const web = `${stem}-web`;
    created.push(unit, `${web}@1.service`, `${web}@2.service`, `${web}@3.service`, `${web}@.service`);
    const dir = `${UNIT_DIR}/${stem}`;
    await putFile(m, `${dir}/${unit}`, sleepUnit([], 'runbook service'));
    await putFile(m, `${dir}/${web}@.service`, sleepUnit([`Conflicts=${web}@*.service`], 'runbook web %i'));
    await putFile(m, `${dir}/deploy.sh`, RUNBOOK);

    const t0 = performance.now();
    const r = await inMachine(m, 'bash', `${dir}/deploy.sh`, unit, web);
    console.log(
      `[cluster] runbook ran in ${(performance.now() - t0).toFixed(0)} ms, exit ${r.code}\n${r.stdout}${r.stderr}`,
    );
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout;
    const ids = [...map.ids.entries()];
    const label = String.raw`[0-9a-f]{8}\.\.\./10\.214\.0\.\d+`;

    // list-machines: the fleetctl header and one row per machine, TAB-aligned.
    expect(out).toContain(`count: ${allMachines.length}\n`);
    expect(out).toMatch(/^MACHINE\t+IP\t+METADATA$/m);
    for (const [name, id] of ids)
      expect(out).toMatch(
        new RegExp(`^${id.slice(0, 8)}\\.\\.\\.\\t+10\\.214\\.0\\.\\d+\\t+name=${name}$`, 'm'),
      );
    // submit / start / stop / destroy messages.
    expect(out).toContain(`Unit ${unit} inactive\n`);
    expect(out).toMatch(new RegExp(`^${unit}\\t+inactive$`, 'm'));
    expect(out).toMatch(new RegExp(`^Unit ${unit} launched on ${label}$`, 'm'));
    expect(out).toContain('state: active\n');
    expect(out).toMatch(new RegExp(`^${unit}\\t+active\\t+running$`, 'm'));
    for (const i of [1, 2, 3])
      expect(out).toMatch(new RegExp(`^Unit ${web}@${i}\\.service launched on ${label}$`, 'm'));
    expect(out).toContain(`web machines: ${allMachines.length}\n`);
    expect(out).toMatch(new RegExp(`^Unit ${unit} loaded on ${label}$`, 'm'));
    expect(r.stderr).toContain(`Successfully stopped units [${unit}].`);
    expect(out).toMatch(new RegExp(`^${unit}\\t+loaded\\t+loaded$`, 'm'));
    for (const u of [unit, `${web}@1.service`, `${web}@2.service`, `${web}@3.service`]) {
      expect(out).toContain(`Destroyed ${u}\n`);
    }
    // The template was only read from disk, never submitted: destroy skips it silently, like fleetctl.
    expect(out).not.toContain(`Destroyed ${web}@.service`);
    expect(out).toContain('left: 0\n');
    expect(out.trimEnd().endsWith('== done')).toBe(true);

    // Nothing is left running anywhere once the agents caught up with the destroy.
    const units = [unit, `${web}@1.service`, `${web}@2.service`, `${web}@3.service`];
    await waitFor(
      'the runbook units stopped on every machine',
      async () => {
        for (const x of allMachines)
          for (const u of units) if ((await isActive(x, u)) === 'active') return false;
        return true;
      },
      10_000,
    );
  }, 180_000);

  it('the full fleetctl runbook (status, journal -f, restart, templates) runs unchanged inside a machine', async () => {
    const prefix = uniq('rb');
    created.push(
      `${prefix}-hello.service`,
      `${prefix}-web@1.service`,
      `${prefix}-web@2.service`,
      `${prefix}-web@3.service`,
      `${prefix}-web@.service`,
    );
    // test/runbooks/fleetctl-runbook.sh checks every step's output and exit code itself; it runs on
    // m1 while its units land on any machine, so status and journal go through the agents' API.
    const r = await inMachine(m, 'bash', `${machineProject}/test/runbooks/fleetctl-runbook.sh`, prefix);
    expect(r.code, `runbook failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('== runbook ok');
  }, 240_000);
});
