/**
 * The first-boot executor on a live system: target-live-probe.ts runs INSIDE a test machine (real
 * systemd 252 as PID 1, real shadow-utils) and applies plans to `/` with `live: true`; this file
 * checks its report: the unit is written, enabled (the wants link systemctl would make) and started
 * through D-Bus, a second apply changes nothing and re-running `start` does not run it again,
 * `restart` does, a failing start is an E_SYSTEMD_JOB error, the user/keys/hostname are applied
 * and no password hash reaches the log.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeSystemd, envDir, machineProject, machines } from '../support/testbed.js';

const m = machines[0] ?? 'm1';

interface Report {
  firstChanged: string[];
  afterStart: { activeState: string; unitFileState: string; invocationId: string };
  wantsLink: string;
  runs1: number;
  secondChanged: string[];
  runs2: number;
  afterRestart: { activeState: string; invocationId: string };
  runs3: number;
  hostname: string;
  networkd: { activeState: string; file: boolean };
  etcHostname: string;
  passwd: number;
  shadowHasHash: boolean;
  keys: string;
  failure: { code: string; message: string } | string;
  log: string[];
  cleanedUp: boolean;
}

describeSystemd(`applyPlan live inside ${m}`, () => {
  it('writes, enables and starts a unit through systemd; idempotent; restart; failure; users; hostname', () => {
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
        'test/integration/target-live-probe.ts',
      ],
      { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const r = JSON.parse(out.trim().split('\n').pop()!) as Report;
    expect(r.firstChanged).toEqual([
      'coreos.units[0]',
      'users[0]',
      'users[0].ssh_authorized_keys',
      'hostname',
      'coreos.units[2]',
    ]);
    // A networkd unit changed: networkd was restarted (so it runs), once, before the commands.
    expect(r.networkd).toEqual({ activeState: 'active', file: true });
    expect(r.log.filter((l) => l.includes('networkd units changed'))).toHaveLength(1);
    expect(r.afterStart.activeState).toBe('active');
    expect(r.afterStart.unitFileState).toBe('enabled');
    expect(r.wantsLink).toMatch(/^\/etc\/systemd\/system\/flotilla-target-live-[0-9a-f]+\.service$/);
    expect(r.runs1).toBe(1);
    expect(r.secondChanged).toEqual([]);
    expect(r.runs2).toBe(1); // start on an active unit runs nothing
    expect(r.afterRestart.activeState).toBe('active');
    expect(r.afterRestart.invocationId).not.toBe(r.afterStart.invocationId);
    expect(r.runs3).toBe(2);
    expect(r.hostname).toMatch(/^tlive-[0-9a-f]{6}$/);
    expect(r.etcHostname).toBe(`${r.hostname}\n`);
    expect(r.passwd).toBe(1);
    expect(r.shadowHasHash).toBe(true);
    expect(r.keys).toContain('ssh-ed25519 AAAAC3Nza probe@test');
    expect(r.failure).toMatchObject({ code: 'E_SYSTEMD_JOB' });
    expect(r.log.join('\n')).toMatch(/first boot: unit command failed .*"reason":"coreos\.units\[1\]"/);
    expect(r.log.join('\n')).not.toContain('$6$');
    expect(r.log.join('\n')).toMatch(/first boot: unit command done .*"command":"start"/);
    expect(r.cleanedUp).toBe(true);
  });
});
