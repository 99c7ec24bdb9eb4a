/**
 * Container units on the real 3-machine cluster, each machine with its own Docker engine
 * (test/env/docker.sh up --machines, brought up by this suite): the whole path from `flotilla start`
 * through the agent (pull decision, generated service) to systemd and dockerd in the machine.
 *
 *   - lifecycle: start (container, list-units container/image/health, journal, cat --generated),
 *     graceful stop within StopTimeout, start again (stale container replaced), Restart=on-failure;
 *   - failure with a reason (exit status), a pull failure (registry on 127.0.0.1 that does not
 *     exist: `flotilla start` fails at once with the reason, one attempt, no loop);
 *   - a plain `docker run` unit works unchanged;
 *   - dockerd stopped and started again while container units run: failed with "docker
 *     unavailable", the agent keeps running, the units run again when Docker is back;
 *   - bad input refused at submit (injection in Image=, invalid Publish=), a missing image with
 *     PullPolicy=never: clear errors, nothing half-configured;
 *   - `flotilla gc`: exited flotilla containers and unused pulled images only.
 *
 * Run under the testbed lock with this checkout in the machines:
 *   npm run build && TESTENV_MACHINE_PROJECT=$PWD flock /tmp/flotilla-testbed.lock \
 *     npx vitest run --project integration test/integration/docker-units.test.ts
 */
import { beforeAll, expect, it } from 'vitest';
import {
  allMachines,
  ctl,
  ctlOk,
  inMachine,
  inMachineOk,
  isActive,
  putFile,
  sleep,
  table,
  uniq,
  waitFor,
  writeUnit,
  useCluster,
  agentJournal,
} from '../support/cluster.js';
import { describeSystemd, env, machineIp } from '../support/testbed.js';

const PIN = 'm2';

describeSystemd('container units on real machines (own Docker engine per machine)', () => {
  beforeAll(() => {
    env('docker.sh', 'up', '--machines');
  }, 180_000);
  const cluster = useCluster();
  const created = cluster.created;
  const cli = allMachines[0]!;
  let port = 18100 + Math.floor(Math.random() * 800);

  interface Row {
    unit: string;
    machine: string;
    active: string;
    sub: string;
    container: string;
    image: string;
    health: string;
    reason: string;
  }
  async function rows(): Promise<Row[]> {
    const out = await ctlOk(
      cli,
      'list-units',
      '--no-legend',
      '--full',
      '--fields=unit,machine,active,sub,container,image,health,reason',
    );
    return table(out).map(
      ([
        unit = '',
        machine = '',
        active = '',
        sub = '',
        container = '',
        image = '',
        health = '',
        ...rest
      ]) => ({
        unit,
        machine,
        active,
        sub,
        container,
        image,
        health,
        reason: rest.join('\t'),
      }),
    );
  }
  const row = async (unit: string) => (await rows()).find((r) => r.unit === unit);

  /** A web server container unit pinned to PIN; returns [unit name, port, path]. */
  async function webUnit(
    stem: string,
    extra: string[] = [],
    service: string[] = [],
  ): Promise<[string, number, string]> {
    const name = `${uniq(stem)}.service`;
    const p = port++;
    const body = [
      '[Unit]',
      `Description=${stem} test container`,
      '[Container]',
      'Image=busybox:latest',
      `Exec=sh -c "mkdir -p /www && echo hello-$(hostname) > /www/index.html && trap 'echo got-TERM; exit 0' TERM; httpd -f -p ${p} -h /www & wait"`,
      'Network=host',
      'StopTimeout=5',
      ...extra,
      '[Service]',
      ...service,
      '[X-Fleet]',
      `MachineMetadata=name=${PIN}`,
      '',
    ].join('\n');
    const path = await writeUnit(cli, name, body);
    created.push(name);
    return [name, p, path];
  }

  const containerOf = async (m: string, name: string) => {
    const r = await inMachine(
      m,
      'docker',
      'inspect',
      '-f',
      '{{.Id}} {{.State.Status}} {{.State.ExitCode}} {{index .Config.Labels "flotilla.unit"}}',
      name,
    );
    if (r.code !== 0) return undefined;
    const [id = '', status = '', code = '', unit = ''] = r.stdout.trim().split(' ');
    return { id, status, code: Number(code), unit };
  };
  const get = async (p: number) => {
    try {
      const res = await fetch(`http://${machineIp(PIN)}:${p}/`, { signal: AbortSignal.timeout(2000) });
      return res.ok ? (await res.text()).trim() : `HTTP ${res.status}`;
    } catch (err) {
      return `error: ${(err as Error).message}`;
    }
  };

  it('start, serve, list-units with container/image/health, journal, graceful stop, start again', async () => {
    const [name, p, path] = await webUnit(
      'web',
      ['HealthCmd=wget -q -O /dev/null http://127.0.0.1:PORT/', 'HealthInterval=1s'].map((l) =>
        l.replace('PORT', String(port)),
      ),
    );
    const t0 = Date.now();
    const r = await ctl(cli, 'start', path);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`Unit ${name.replace('.', '\\.')} launched on .*${machineIp(PIN)}`));
    console.log(`[docker-units] start → launched in ${Date.now() - t0} ms`);
    // The blocking start returns once the container runs (Type=notify): it serves at once.
    expect(await get(p)).toBe(`hello-${PIN}`);
    const cname = `flotilla-${name.replace(/\.service$/, '')}`;
    const c1 = await containerOf(PIN, cname);
    expect(c1).toMatchObject({ status: 'running', unit: name });
    // the container lives in PIN's own engine, not in the others'
    for (const m of allMachines.filter((x) => x !== PIN)) expect(await containerOf(m, cname)).toBeUndefined();

    const healthy = await waitFor(
      'list-units health healthy',
      async () => {
        const x = await row(name);
        return x?.health === 'healthy' ? x : undefined;
      },
      20_000,
    );
    expect(healthy).toMatchObject({
      active: 'active',
      sub: 'running',
      container: cname,
      image: 'busybox:latest',
      reason: '-',
    });

    // journal: the runner's lines and the container's own output, under the unit
    const journal = await inMachineOk(PIN, 'journalctl', '-u', name, '--no-pager', '-o', 'cat');
    expect(journal).toContain(`container ${cname}`);
    const status = await inMachine(PIN, 'systemctl', 'status', '--no-pager', '-n', '20', name);
    expect(status.stdout).toContain(`Status: "container ${cname} running"`);

    // the generated unit
    const gen = await ctlOk(cli, 'cat', '--generated', name);
    expect(gen).toContain('Type=notify');
    expect(gen).toContain('KillMode=mixed');
    expect(gen).toMatch(
      /ExecStart=\S+node \S+\/dist\/docker\/runner-main\.js run \/run\/flotilla\/containers\//,
    );
    expect(await ctlOk(cli, 'cat', name)).not.toContain('ExecStart'); // the unit as submitted

    // graceful stop: SIGTERM reaches the container, which exits 0 well within StopTimeout
    const s0 = Date.now();
    expect((await ctl(cli, 'stop', name)).code).toBe(0);
    await waitFor('unit inactive', async () => (await isActive(PIN, name)) === 'inactive', 15_000);
    expect(Date.now() - s0).toBeLessThan(5000 + 4000);
    expect(await containerOf(PIN, cname)).toMatchObject({ status: 'exited', code: 0 });
    expect(await inMachineOk(PIN, 'journalctl', '-u', name, '--no-pager', '-o', 'cat')).toContain('got-TERM');
    expect(await get(p)).toMatch(/^error/);

    // start again: the stale (exited) container of ours is replaced by a new one
    expect((await ctl(cli, 'start', name)).code).toBe(0);
    const c2 = await containerOf(PIN, cname);
    expect(c2?.status).toBe('running');
    expect(c2?.id).not.toBe(c1?.id);
    expect(await get(p)).toBe(`hello-${PIN}`);
  });

  it('Restart=on-failure: a killed container comes back under systemd', async () => {
    const [name, p, path] = await webUnit('restart', [], ['Restart=on-failure', 'RestartSec=1']);
    expect((await ctl(cli, 'start', path)).code).toBe(0);
    const cname = `flotilla-${name.replace(/\.service$/, '')}`;
    const before = await containerOf(PIN, cname);
    await inMachineOk(PIN, 'docker', 'kill', cname);
    const after = await waitFor(
      'a new container',
      async () => {
        const c = await containerOf(PIN, cname);
        return c && c.id !== before?.id && c.status === 'running' ? c : undefined;
      },
      20_000,
    );
    expect(after.unit).toBe(name);
    await waitFor('serving again', async () => (await get(p)) === `hello-${PIN}`, 10_000);
    expect(
      Number((await inMachineOk(PIN, 'systemctl', 'show', '-p', 'NRestarts', '--value', name)).trim()),
    ).toBeGreaterThanOrEqual(1);
  });

  it('a container that fails: the unit is failed with the exit status as the reason', async () => {
    const name = `${uniq('fail')}.service`;
    const path = await writeUnit(
      cli,
      name,
      `[Container]\nImage=busybox:latest\nExec=sh -c "sleep 1; exit 3"\nNetwork=none\n[X-Fleet]\nMachineMetadata=name=${PIN}\n`,
    );
    created.push(name);
    await ctl(cli, 'start', path);
    const failed = await waitFor(
      'failed with a reason',
      async () => {
        const x = await row(name);
        return x?.active === 'failed' && x.reason !== '-' ? x : undefined;
      },
      20_000,
    );
    expect(failed.reason).toBe('container exited with status 3');
    expect(await isActive(PIN, name)).toBe('failed');
    // the agent does not restart it in a loop
    await sleep(3000);
    expect(
      Number((await inMachineOk(PIN, 'systemctl', 'show', '-p', 'NRestarts', '--value', name)).trim()),
    ).toBe(0);
  });

  it('a pull that fails: start fails at once with the reason, one attempt, no loop', async () => {
    const name = `${uniq('pull')}.service`;
    const image = `127.0.0.1:1/flotilla/missing:${Date.now().toString(36)}`;
    const path = await writeUnit(
      cli,
      name,
      `[Container]\nImage=${image}\n[X-Fleet]\nMachineMetadata=name=${PIN}\n`,
    );
    created.push(name);
    const t0 = Date.now();
    const r = await ctl(cli, 'start', path);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`unit ${name} failed: image pull failed: ${image}: `);
    expect(r.stderr).toMatch(/connection refused/);
    expect(Date.now() - t0).toBeLessThan(15_000);
    const x = await row(name);
    expect(x).toMatchObject({ active: 'failed', sub: 'failed' });
    expect(x!.reason).toMatch(/^image pull failed: /);
    await sleep(4000);
    const journal = await agentJournal(PIN);
    expect(journal.split('\n').filter((l) => l.includes(`pulling ${image} for ${name}`))).toHaveLength(1);
    // never started, no container
    expect(await isActive(PIN, name)).not.toBe('active');
  });

  it('a plain unit that runs `docker run` keeps working unchanged', async () => {
    const name = `${uniq('plain')}.service`;
    const p = port++;
    const cname = name.replace(/\.service$/, '');
    const body = [
      '[Unit]',
      'Description=plain docker run',
      '[Service]',
      `ExecStartPre=-/usr/bin/docker rm -f ${cname}`,
      `ExecStart=/usr/bin/docker run --rm --name ${cname} --network host busybox:latest httpd -f -p ${p}`,
      `ExecStop=/usr/bin/docker stop -t 2 ${cname}`,
      '[X-Fleet]',
      `MachineMetadata=name=${PIN}`,
      '',
    ].join('\n');
    const path = await writeUnit(cli, name, body);
    created.push(name);
    expect((await ctl(cli, 'start', path)).code).toBe(0);
    await waitFor('plain container serves', async () => !(await get(p)).startsWith('error'), 15_000);
    // installed as written: no generated service
    const installed = await inMachineOk(PIN, 'systemctl', 'cat', name);
    expect(installed).toContain(`ExecStart=/usr/bin/docker run --rm --name ${cname}`);
    expect(installed).not.toContain('X-Flotilla');
    expect((await ctl(cli, 'stop', name)).code).toBe(0);
    await waitFor('plain container gone', async () => (await containerOf(PIN, cname)) === undefined, 15_000);
  });

  it('dockerd stops and starts again while container units run', async () => {
    const [a, pa, patha] = await webUnit('dk-a');
    const [b, pb, pathb] = await webUnit('dk-b', [], ['Restart=on-failure', 'RestartSec=500ms']);
    expect((await ctl(cli, 'start', patha, pathb)).code).toBe(0);
    expect(await get(pa)).toBe(`hello-${PIN}`);
    expect(await get(pb)).toBe(`hello-${PIN}`);
    const agentPid = (
      await inMachineOk(PIN, 'systemctl', 'show', '-p', 'MainPID', '--value', 'flotilla')
    ).trim();

    await inMachineOk(PIN, 'systemctl', 'stop', 'flotilla-dockerd');
    try {
      for (const u of [a, b]) {
        const x = await waitFor(
          `${u} failed: docker unavailable`,
          async () => {
            const r = await row(u);
            return r?.active === 'failed' && r.reason.startsWith('docker unavailable') ? r : undefined;
          },
          45_000,
        );
        expect(x.reason).toMatch(/^docker unavailable: /);
      }
      // the agent keeps running (same process)
      expect(await isActive(PIN, 'flotilla')).toBe('active');
      expect(
        (await inMachineOk(PIN, 'systemctl', 'show', '-p', 'MainPID', '--value', 'flotilla')).trim(),
      ).toBe(agentPid);
    } finally {
      await inMachineOk(PIN, 'systemctl', 'start', 'flotilla-dockerd');
    }
    for (const [u, p] of [
      [a, pa],
      [b, pb],
    ] as const) {
      await waitFor(`${u} active again`, async () => (await isActive(PIN, u)) === 'active', 45_000);
      await waitFor(`${u} serving again`, async () => (await get(p)) === `hello-${PIN}`, 15_000);
      const x = await waitFor(
        'reason cleared',
        async () => {
          const r = await row(u);
          return r?.active === 'active' && r.container !== '-' ? r : undefined;
        },
        15_000,
      );
      expect(x.reason).toBe('-');
    }
  });

  it('bad input is refused with a clear error and nothing runs half-configured', async () => {
    const cases: [string, string, RegExp][] = [
      [
        'inject',
        'Image=busybox;touch /tmp/pwned',
        /\[Container\] Image="busybox;touch \/tmp\/pwned": contains ";"/,
      ],
      ['inject2', 'Image=busybox$(touch /tmp/pwned)', /contains "\$"/],
      [
        'publish',
        'Image=busybox:latest\nPublish=80:http',
        /\[Container\] Publish="80:http": container port "http" must be a number from 1 to 65535/,
      ],
      ['publish2', 'Image=busybox:latest\nPublish=99999:80', /host port "99999"/],
      ['hostpub', 'Image=busybox:latest\nNetwork=host\nPublish=8080:80', /has no effect with Network=host/],
      ['unknown', 'Image=busybox:latest\nCommand=sh', /unknown key/],
      [
        'execstart',
        'Image=busybox:latest\n[Service]\nExecStart=/bin/sh',
        /\[Service\] ExecStart= cannot be used with a \[Container\] section/,
      ],
    ];
    for (const [stem, container, message] of cases) {
      const name = `${uniq(stem)}.service`;
      const path = await writeUnit(cli, name, `[Container]\n${container}\n`);
      const r = await ctl(cli, 'submit', path);
      expect(r.code, stem).toBe(1);
      expect(r.stderr, stem).toMatch(message);
      const files = await ctlOk(cli, 'list-unit-files', '--no-legend', '--fields=unit');
      expect(files, stem).not.toContain(name);
    }
    for (const m of allMachines) expect((await inMachine(m, 'test', '-e', '/tmp/pwned')).code).not.toBe(0);

    // a valid reference to an image the machine does not have, with PullPolicy=never
    const name = `${uniq('noimage')}.service`;
    const path = await writeUnit(
      cli,
      name,
      `[Container]\nImage=flotilla-test/absent:1\nPullPolicy=never\n[X-Fleet]\nMachineMetadata=name=${PIN}\n`,
    );
    created.push(name);
    await ctl(cli, 'start', path);
    const x = await waitFor(
      'failed with reason',
      async () => {
        const r = await row(name);
        return r?.active === 'failed' && r.reason !== '-' ? r : undefined;
      },
      20_000,
    );
    expect(x.reason).toBe('image flotilla-test/absent:1 is not present on this machine (PullPolicy=never)');
    expect(await containerOf(PIN, `flotilla-${name.replace(/\.service$/, '')}`)).toBeUndefined();
  });

  it('gc removes exited flotilla containers and unused pulled images of this machine only', async () => {
    const [name, , path] = await webUnit('gc');
    expect((await ctl(cli, 'start', path)).code).toBe(0);
    expect((await ctl(cli, 'stop', name)).code).toBe(0);
    const cname = `flotilla-${name.replace(/\.service$/, '')}`;
    await waitFor('exited', async () => (await containerOf(PIN, cname))?.status === 'exited', 15_000);
    const tag = `flotilla-test/gc:${Date.now().toString(36)}`;
    const keepTag = `flotilla-test/kept:${Date.now().toString(36)}`;
    await inMachineOk(PIN, 'docker', 'tag', 'busybox:latest', tag);
    await inMachineOk(PIN, 'docker', 'tag', 'busybox:latest', keepTag);
    // foreign: an exited container without our labels, and an image flotilla did not pull
    const foreign = `foreign-${Date.now().toString(36)}`;
    await inMachineOk(PIN, 'docker', 'run', '--name', foreign, '--network', 'none', 'busybox:latest', 'true');
    // as if the agent had pulled `tag` (no registry here)
    await putFile(
      PIN,
      '/var/lib/flotilla/docker-images.json',
      JSON.stringify({ [tag]: { pulledAt: new Date().toISOString() } }),
    );

    const r = await ctl(PIN, 'gc');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Removed container ${cname} (unit ${name}`);
    expect(r.stdout).toContain(`Removed image ${tag}`);
    expect(await containerOf(PIN, cname)).toBeUndefined();
    expect(await containerOf(PIN, foreign)).toMatchObject({ status: 'exited' });
    expect((await inMachine(PIN, 'docker', 'image', 'inspect', keepTag)).code).toBe(0);
    expect((await inMachine(PIN, 'docker', 'image', 'inspect', 'busybox:latest')).code).toBe(0);
    expect((await inMachine(PIN, 'docker', 'image', 'inspect', tag)).code).not.toBe(0);
    await inMachine(PIN, 'docker', 'rm', '-f', foreign);
    await inMachine(PIN, 'docker', 'rmi', keepTag);
  });
});
