/**
 * The manager run by a process INSIDE a machine, like the agent in production: default bus address,
 * local journalctl. The probe (systemd-inside-probe.ts) runs under node + tsx from the read-only
 * /project bind mount and reports JSON; this file checks the report.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeSystemd, envDir, machineProject, machines } from '../support/testbed.js';

const m = machines[1] ?? machines[0] ?? 'm2';

interface Report {
  env: string | null;
  address: string;
  installed: { name: string; path: string; changed: boolean; enabled: boolean }[];
  fileMode: string;
  start: { result: string };
  event: { activeState: string; latencyMs: number } | null;
  journal: string[];
  childrenAfterJournal: string[];
  state: { activeState: string; subState: string; result: string };
  failure:
    | { result: string; unitResult: string; status: number; journal: string[]; message: string }
    | string
    | null;
  after: string[];
  childrenAtEnd: string[];
}

describeSystemd(`SystemdManager from a process inside ${m}`, () => {
  it('installs, starts, watches, reads the journal (follow + failure lines) and cleans up', () => {
    const out = execFileSync(
      'bash',
      [
        join(envDir, 'exec.sh'),
        m,
        'env',
        '-C',
        machineProject,
        'node',
        '--import',
        'tsx',
        'test/integration/systemd-inside-probe.ts',
      ],
      { encoding: 'utf8', timeout: 90_000, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const r = JSON.parse(out.trim().split('\n').pop()!) as Report;
    expect(r.env).toBeNull(); // no DBUS_SYSTEM_BUS_ADDRESS: the default system bus socket
    expect(r.address).toBe('unix:path=/run/dbus/system_bus_socket');
    expect(r.installed.map((i) => i.enabled)).toEqual([true, false]);
    expect(r.fileMode).toBe('644');
    expect(r.start.result).toBe('done');
    expect(r.event?.activeState).toBe('active');
    expect(r.event!.latencyMs).toBeLessThan(1000);
    // journal follow: systemd's own line and the unit's output, whose invalid UTF-8 byte arrived as
    // a byte array in journalctl's JSON and was decoded with U+FFFD
    expect(r.journal.some((l) => l.startsWith('Starting '))).toBe(true);
    expect(r.journal).toContain('flotilla-inside \u2603 \ufffd end');
    expect(r.childrenAfterJournal).toEqual([]); // the cancelled reader killed journalctl
    expect(r.state).toMatchObject({ activeState: 'active', subState: 'exited', result: 'success' });
    expect(r.failure).toMatchObject({ result: 'failed', unitResult: 'exit-code', status: 3 });
    const failure = r.failure as Exclude<Report['failure'], string | null>;
    expect(failure.journal.join('\n')).toContain('flotilla-inside-failing');
    expect(failure.message).toContain('status 3');
    expect(r.after).toEqual(['not-found', 'not-found']);
    expect(r.childrenAtEnd).toEqual([]);
  });
});
