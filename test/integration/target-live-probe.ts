/**
 * Runs INSIDE a test machine (not a test file): `exec.sh mK env -C /project node --import tsx
 * test/integration/target-live-probe.ts`. Applies first-boot plans to the machine itself (root
 * `/`, live): a unit with enable + command=start through the real systemd over D-Bus, a second
 * identical apply, a restart, a failing start, a user with keys and the hostname. Prints one JSON
 * report on stdout; target-live.test.ts checks it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { applyPlan } from '../../src/target/apply.js';
import type { PlannedAction } from '../../src/target/types.js';
import { DbusSystemdManager } from '../../src/systemd/dbus-manager.js';

const suffix = randomBytes(3).toString('hex');
const ok = `flotilla-target-live-${suffix}.service`;
const bad = `flotilla-target-bad-${suffix}.service`;
const marker = `/run/flotilla-target-live-${suffix}`;
const user = `tl${suffix}`;
// Matches no link: networkd is restarted for it and leaves the machine's eth0 alone.
const network = `90-flotilla-target-${suffix}.network`;
const lines: string[] = [];
const log = {
  debug: () => undefined,
  info: (f: Record<string, unknown>, m: string) => void lines.push(`${m} ${JSON.stringify(f)}`),
  warn: (f: Record<string, unknown>, m: string) => void lines.push(`${m} ${JSON.stringify(f)}`),
  error: (f: Record<string, unknown>, m: string) => void lines.push(`${m} ${JSON.stringify(f)}`),
};
// Put back afterwards: the machine's name is test/env's (other tests and the runbooks read it).
const hostnameBefore = hostname();
const etcHostnameBefore = readFileSync('/etc/hostname', 'utf8');
const HASH = '$6$probe$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghij/.';

const okUnit = `[Unit]
Description=flotilla target live probe

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'date +%%s%%N >> ${marker}'

[Install]
WantedBy=multi-user.target
`;
const plan = (command: string): PlannedAction[] => [
  { reason: 'coreos.units[0]', action: { kind: 'unit', name: ok, contents: okUnit, enable: true, command } },
  { reason: 'users[0]', action: { kind: 'user', name: user, passwordHash: HASH, groups: ['users'] } },
  {
    reason: 'users[0].ssh_authorized_keys',
    action: {
      kind: 'authorized-keys',
      user,
      setName: 'coreos-cloudinit',
      keys: ['ssh-ed25519 AAAAC3Nza probe@test'],
    },
  },
  { reason: 'hostname', action: { kind: 'hostname', hostname: `tlive-${suffix}` } },
  {
    reason: 'coreos.units[2]',
    action: {
      kind: 'unit',
      name: network,
      contents: '[Match]\nName=fltnone0\n\n[Network]\nDHCP=no\n',
      runtime: true,
    },
  },
];

const report: Record<string, unknown> = {};
const mgr = await DbusSystemdManager.connect();
try {
  const first = await applyPlan(plan('start'), { root: '/', live: true, log });
  report.firstChanged = first.changed.map((p) => p.reason);
  const s1 = await mgr.state(ok);
  report.afterStart = {
    activeState: s1.activeState,
    unitFileState: s1.unitFileState,
    invocationId: s1.invocationId,
  };
  report.wantsLink = readlinkSync(`/etc/systemd/system/multi-user.target.wants/${ok}`);
  report.runs1 = readFileSync(marker, 'utf8').trim().split('\n').length;
  const second = await applyPlan(plan('start'), { root: '/', live: true, log });
  report.secondChanged = second.changed.map((p) => p.reason);
  report.runs2 = readFileSync(marker, 'utf8').trim().split('\n').length;
  await applyPlan(plan('restart'), { root: '/', live: true, log });
  const s3 = await mgr.state(ok);
  report.afterRestart = { activeState: s3.activeState, invocationId: s3.invocationId };
  report.runs3 = readFileSync(marker, 'utf8').trim().split('\n').length;
  const nd = await mgr.state('systemd-networkd.service');
  report.networkd = { activeState: nd.activeState, file: existsSync(`/run/systemd/network/${network}`) };
  report.hostname = hostname();
  report.etcHostname = readFileSync('/etc/hostname', 'utf8');
  report.passwd = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`${user}:`)).length;
  report.shadowHasHash = readFileSync('/etc/shadow', 'utf8').includes(`${user}:${HASH}:`);
  report.keys = readFileSync(`/home/${user}/.ssh/authorized_keys`, 'utf8');
  try {
    await applyPlan(
      [
        {
          reason: 'coreos.units[1]',
          action: {
            kind: 'unit',
            name: bad,
            contents: '[Service]\nType=oneshot\nExecStart=/bin/sh -c "exit 3"\n',
            command: 'start',
          },
        },
      ],
      { root: '/', live: true, log },
    );
    report.failure = 'no error';
  } catch (err) {
    report.failure = { code: (err as { code?: string }).code, message: (err as Error).message };
  }
  report.log = lines;
} finally {
  await mgr.hostUnitJob(ok, 'StopUnit').catch(() => undefined);
  for (const p of [
    `/etc/systemd/system/${ok}`,
    `/etc/systemd/system/multi-user.target.wants/${ok}`,
    `/etc/systemd/system/${bad}`,
    marker,
    `/run/systemd/network/${network}`,
  ]) {
    rmSync(p, { force: true });
  }
  await mgr.reload().catch(() => undefined);
  writeFileSync('/etc/hostname', etcHostnameBefore);
  execFileSync('hostname', [hostnameBefore]);
  try {
    execFileSync('userdel', ['-r', user], { stdio: 'ignore' });
  } catch {
    /* not created */
  }
  report.cleanedUp =
    !existsSync(`/etc/systemd/system/${ok}`) &&
    hostname() === hostnameBefore &&
    !readFileSync('/etc/passwd', 'utf8').includes(`\n${user}:`);
  await mgr.close();
}
console.log(JSON.stringify(report));
