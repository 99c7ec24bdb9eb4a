/**
 * No secret in a world-readable file or in a log, on the real 3-machine cluster with etcd
 * authentication enabled (each machine with its own Docker engine, test/env/docker.sh up
 * --machines):
 *
 *   - every agent reaches etcd with `etcd_servers=http://root:PASSWORD@…` (the URL form);
 *   - a container unit with `[Container] Environment=APP_SECRET=…` runs and its container has the
 *     variable with its value (docker inspect), while the generated unit (0644, `systemctl cat`)
 *     names the variable only, and the run spec holding the value is 0600;
 *   - the whole journal of flotilla.service on every machine (since the agents were restarted with
 *     the password, through the unit's start, a failing start with a bad env file, and its stop)
 *     is grepped for the etcd password and the container secret: neither is ever present, while
 *     the redacted `registry: etcd http://root:***@…` line is.
 *
 * Afterwards etcd auth is disabled again and the agents get their old configuration back.
 *
 * Run under the testbed lock with this checkout in the machines:
 *   npm run build && TESTENV_MACHINE_PROJECT=$PWD flock /tmp/flotilla-testbed.lock \
 *     npx vitest run --project integration test/integration/secrets.test.ts
 */
import { Etcd3 } from 'etcd3';
import { beforeAll, expect, it } from 'vitest';
import {
  allMachines,
  ctl,
  ctlOk,
  inMachine,
  inMachineOk,
  isActive,
  machineIds,
  putFile,
  uniq,
  useCluster,
  listMachines,
  waitFor,
  writeUnit,
  ClusterMap,
} from '../support/cluster.js';
import { describeSystemd, env, machinesEtcdEndpoints } from '../support/testbed.js';

const ETCD_PASSWORD = 'EtcdPw-planted-5d1e9c';
const APP_SECRET = 'AppSecret-planted-7b2f4a';
const ENV_FILE = '/etc/flotilla/flotilla.env';
const PIN = 'm2';

describeSystemd('secrets stay out of world-readable files and logs (etcd auth on)', () => {
  beforeAll(() => {
    env('docker.sh', 'up', '--machines');
  }, 180_000);
  const cluster = useCluster();
  const cli = allMachines[0]!;
  const hosts = (machinesEtcdEndpoints ?? []).map((e) => e.replace(/^http:\/\//, ''));
  /** When the agents were restarted with the password (journalctl --since). */
  let since = '';

  const admin = (auth: boolean) =>
    new Etcd3({ hosts, ...(auth ? { auth: { username: 'root', password: ETCD_PASSWORD } } : {}) });

  /** Restart every agent and wait until all are listed again (list-machines goes through etcd). */
  async function restartAgents(): Promise<void> {
    await Promise.all(allMachines.map((m) => inMachineOk(m, 'systemctl', 'restart', 'flotilla')));
    const map = new ClusterMap(await machineIds());
    await waitFor(
      'every machine in list-machines',
      async () => {
        const listed = new Set((await listMachines(cli).catch(() => [])).map((r) => r.id));
        return allMachines.every((m) => listed.has(map.id(m)));
      },
      90_000,
      500,
    );
  }

  /** etcd auth on (root/ETCD_PASSWORD) and every agent on the URL form with the password. */
  /** Remove the root user and role (left over from an interrupted run, or ours). */
  async function dropRootUser(): Promise<void> {
    const c = admin(false);
    await c
      .user('root')
      .delete()
      .catch(() => undefined);
    await c
      .role('root')
      .delete()
      .catch(() => undefined);
    c.close();
  }

  async function enableAuth(): Promise<void> {
    await dropRootUser();
    const c = admin(false);
    try {
      await c.role('root').create();
      await c.user('root').create(ETCD_PASSWORD);
      await c.user('root').addRole('root');
      await c.auth.authEnable();
    } finally {
      c.close();
    }
    for (const m of allMachines) {
      // The env file now holds a password: root only, as the README asks.
      await inMachineOk(m, 'chmod', '600', ENV_FILE);
      await inMachineOk(
        m,
        'sed',
        '-i',
        `/^FLOTILLA_ETCD_SERVERS=/s#http://#http://root:${ETCD_PASSWORD}@#g`,
        ENV_FILE,
      );
    }
    await restartAgents();
  }

  /** Back to the cluster as cluster.sh made it (also when the test failed half way). */
  async function disableAuth(): Promise<void> {
    const withAuth = admin(true);
    await withAuth.auth.authDisable().catch(() => undefined); // fails when auth was never enabled
    withAuth.close();
    await dropRootUser();
    for (const m of allMachines)
      await inMachine(m, 'sed', '-i', `s#http://root:${ETCD_PASSWORD}@#http://#g`, ENV_FILE);
    await restartAgents();
  }

  it('the container gets its Environment= secret; no file others can read and no log line has a secret', async () => {
    since = (await inMachineOk(cli, 'date', '+%Y-%m-%d %H:%M:%S')).trim();
    try {
      await enableAuth();
      await scenario();
    } finally {
      await disableAuth();
    }
  }, 420_000);

  async function scenario(): Promise<void> {
    const name = `${uniq('secret')}.service`;
    const body = [
      '[Unit]',
      'Description=secrets test container',
      '[Container]',
      'Image=busybox:latest',
      'Exec=sleep 1000',
      'Network=none',
      'StopTimeout=2',
      `Environment=APP_SECRET=${APP_SECRET} PLAIN=visible`,
      '[X-Fleet]',
      `MachineMetadata=name=${PIN}`,
      '',
    ].join('\n');
    const path = await writeUnit(cli, name, body);
    cluster.created.push(name);
    await ctlOk(cli, 'start', '--block-attempts=60', path);
    await waitFor(`${name} active on ${PIN}`, async () => (await isActive(PIN, name)) === 'active', 60_000);

    // The container has the variable with its value.
    const stem = name.replace(/\.service$/, '');
    const envOut = await inMachineOk(
      PIN,
      'docker',
      'inspect',
      '-f',
      '{{range .Config.Env}}{{println .}}{{end}}',
      `flotilla-${stem}`,
    );
    expect(envOut.split('\n')).toEqual(expect.arrayContaining([`APP_SECRET=${APP_SECRET}`, 'PLAIN=visible']));

    // What any local user can read: the unit file (systemctl cat) and its mode.
    const cat = await inMachineOk(PIN, 'systemctl', 'cat', name);
    expect(cat).toContain('EnvironmentNames=APP_SECRET PLAIN');
    expect(cat).not.toContain(APP_SECRET);
    const fragment = (
      await inMachineOk(PIN, 'systemctl', 'show', '-p', 'FragmentPath', '--value', name)
    ).trim();
    expect((await inMachineOk(PIN, 'stat', '-L', '-c', '%a', fragment)).trim()).toBe('644');
    expect(await inMachineOk(PIN, 'cat', fragment)).not.toContain(APP_SECRET);
    const gen = await ctlOk(cli, 'cat', '--generated', name);
    expect(gen).not.toContain(APP_SECRET);
    // The run spec holds it, root only.
    const spec = cat.match(/^Spec=(.+)$/m)?.[1];
    expect(spec).toBeDefined();
    expect((await inMachineOk(PIN, 'stat', '-c', '%a', spec!)).trim()).toBe('600');
    expect(await inMachineOk(PIN, 'cat', spec!)).toContain(APP_SECRET);
    // No world-readable file under the agent's runtime directories holds the secret.
    const leaks = await inMachine(
      PIN,
      'sh',
      '-c',
      `find /run/flotilla /run/systemd /etc/systemd -type f -perm -o=r -print0 2>/dev/null | xargs -0 -r grep -l -F -- '${APP_SECRET}'`,
    );
    expect(leaks.stdout.trim()).toBe('');

    // A failing start with an unterminated quote in an env file: the reason names file and line.
    const bad = `${uniq('badenv')}.service`;
    await putFile(PIN, '/etc/secrets-test-bad.env', `OK=1\nMSG="never closed\n`);
    const badPath = await writeUnit(
      cli,
      bad,
      body
        .replace(
          `Environment=APP_SECRET=${APP_SECRET} PLAIN=visible`,
          'EnvironmentFile=/etc/secrets-test-bad.env',
        )
        .replace('Description=secrets test container', 'Description=bad env file'),
    );
    cluster.created.push(bad);
    await ctl(cli, 'start', '--block-attempts=20', badPath);
    await waitFor(
      `${bad} failed with the env file's line`,
      async () =>
        (await inMachine(PIN, 'journalctl', '-u', bad, '--no-pager')).stdout.includes(
          'EnvironmentFile /etc/secrets-test-bad.env: line 2: MSG: unterminated double quote',
        ),
      60_000,
    );

    await ctlOk(cli, 'stop', '--block-attempts=60', name);
    await waitFor(`${name} stopped`, async () => (await isActive(PIN, name)) !== 'active', 60_000);

    // The agents' whole journal since they got the password.
    for (const m of allMachines) {
      const journal = (
        await inMachine(m, 'journalctl', '-u', 'flotilla', '--no-pager', '-o', 'cat', '--since', since)
      ).stdout;
      expect(journal, `${m}'s agent journal`).toContain('registry: etcd http://root:***@');
      expect(journal.includes(ETCD_PASSWORD), `etcd password in ${m}'s agent journal`).toBe(false);
      expect(journal.includes(APP_SECRET), `container secret in ${m}'s agent journal`).toBe(false);
    }
    // And the unit's own journal (the runner's lines) on the machine that ran it.
    const unitJournal = (await inMachine(PIN, 'journalctl', '-u', name, '--no-pager', '-o', 'cat')).stdout;
    expect(unitJournal).not.toContain(APP_SECRET);
  }
});
