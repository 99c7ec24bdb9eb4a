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
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
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
import { bootMachine, describeSystemd, env, machineIp, powerCut } from '../support/testbed.js';

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
  /** The agent API's status of a unit (what `flotilla status` prints, plus container and reason). */
  const statusJson = async (unit: string) =>
    JSON.parse(
      await inMachineOk(
        cli,
        'curl',
        '-s',
        '--unix-socket',
        '/var/run/fleet.sock',
        `http://localhost/flotilla/v1/units/${unit}/status?lines=5`,
      ),
    ) as { output: string; reason?: string; container?: Record<string, unknown> };

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
    // The API's status (what `flotilla status` prints) carries the container as the agent sees it.
    const apiStatus = await statusJson(name);
    expect(apiStatus.container).toMatchObject({
      name: cname,
      image: 'busybox:latest',
      state: 'running',
      health: 'healthy',
    });
    expect(apiStatus.output).toContain(`Status: "container ${cname} running"`);

    // the generated unit
    const gen = await ctlOk(cli, 'cat', '--generated', name);
    expect(gen).toContain('Type=notify');
    expect(gen).toContain('KillMode=mixed');
    expect(gen).toMatch(
      /ExecStart=\S+node \S+\/dist\/container\/runner-main\.js run \/run\/flotilla\/containers\//,
    );
    expect(await ctlOk(cli, 'cat', name)).not.toContain('ExecStart'); // the unit as submitted

    // graceful stop: SIGTERM reaches the container, which exits 0 well within StopTimeout
    const s0 = Date.now();
    expect((await ctl(cli, 'stop', name)).code).toBe(0);
    await waitFor('unit inactive', async () => (await isActive(PIN, name)) === 'inactive', 15_000);
    expect(Date.now() - s0).toBeLessThan(5000 + 4000);
    expect(await containerOf(PIN, cname)).toBeUndefined(); // a requested stop removes it
    expect(await inMachineOk(PIN, 'journalctl', '-u', name, '--no-pager', '-o', 'cat')).toContain('got-TERM');
    expect(await get(p)).toMatch(/^error/);

    // start again: a new container
    expect((await ctl(cli, 'start', name)).code).toBe(0);
    const c2 = await containerOf(PIN, cname);
    expect(c2?.status).toBe('running');
    expect(c2?.id).not.toBe(c1?.id);
    expect(await get(p)).toBe(`hello-${PIN}`);
  });

  it('an agent restart adopts a running container unit: same container, same runner', async () => {
    const [name, p, path] = await webUnit('adopt');
    expect((await ctl(cli, 'start', path)).code).toBe(0);
    const cname = `flotilla-${name.replace(/\.service$/, '')}`;
    const before = await containerOf(PIN, cname);
    const pid = (await inMachineOk(PIN, 'systemctl', 'show', '-p', 'MainPID', '--value', name)).trim();
    await inMachineOk(PIN, 'systemctl', 'restart', 'flotilla');
    await waitFor('agent back', async () => (await isActive(PIN, 'flotilla')) === 'active', 30_000);
    await sleep(3000); // a few reconciles
    expect(await containerOf(PIN, cname)).toEqual(before);
    expect((await inMachineOk(PIN, 'systemctl', 'show', '-p', 'MainPID', '--value', name)).trim()).toBe(pid);
    expect(await get(p)).toBe(`hello-${PIN}`);
    const x = await waitFor(
      'container shown again',
      async () => {
        const r = await row(name);
        return r?.container === cname ? r : undefined;
      },
      15_000,
    );
    expect(x).toMatchObject({ active: 'active', sub: 'running' });
  });

  it('power cut: the container unit moves to another machine; the old container stays dead', async () => {
    const name = `${uniq('move')}.service`;
    const p = port++;
    const path = await writeUnit(
      cli,
      name,
      `[Container]\nImage=busybox:latest\nExec=sh -c "echo on-$(hostname) > /tmp/i; httpd -f -p ${p} -h /tmp"\nNetwork=host\nStopTimeout=1\n[X-Fleet]\nMachineMetadata=name=m2\nMachineMetadata=name=m3\n`,
    );
    created.push(name);
    expect((await ctl(cli, 'start', path)).code).toBe(0);
    const cname = `flotilla-${name.replace(/\.service$/, '')}`;
    const victim = (await containerOf('m2', cname))?.status === 'running' ? 'm2' : 'm3';
    const other = victim === 'm2' ? 'm3' : 'm2';
    expect(await containerOf(victim, cname)).toMatchObject({ status: 'running' });
    powerCut(victim);
    const t0 = Date.now();
    await waitFor(
      `${name} running in ${other}`,
      async () => (await containerOf(other, cname))?.status === 'running',
      60_000,
    );
    console.log(`[docker-units] power cut → container running on the other machine in ${Date.now() - t0} ms`);
    const res = await fetch(`http://${machineIp(other)}:${p}/i`, { signal: AbortSignal.timeout(3000) });
    expect((await res.text()).trim()).toBe(`on-${other}`);
    bootMachine(victim);
    await waitFor(
      'victim docker back',
      async () => (await inMachine(victim, 'docker', 'info')).code === 0,
      60_000,
    );
    await sleep(4000); // its agent reconciles: the unit is not its any more
    const old = await containerOf(victim, cname);
    expect(old === undefined || old.status !== 'running').toBe(true);
    expect(await containerOf(other, cname)).toMatchObject({ status: 'running' });
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
    const apiStatus = await statusJson(name);
    expect(apiStatus.reason).toBe('container exited with status 3');
    expect(apiStatus.container).toMatchObject({ state: 'exited', exitCode: 3 });
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

  /** The test registry (docker-registry.mjs) in PIN's network namespace, on its loopback. */
  async function registry(extra: string[]): Promise<{ port: number; stop: () => Promise<void> }> {
    const rport = 15000 + Math.floor(Math.random() * 1000);
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        `${process.env.TESTENV_NETNS_PREFIX ?? 'fl-'}${PIN}`,
        process.execPath,
        fileURLToPath(new URL('./docker-registry.mjs', import.meta.url)),
        '--listen',
        `127.0.0.1:${rport}`,
        '--rootfs',
        `${process.env.TESTENV_CACHE ?? '/var/cache/flotilla-testenv'}/busybox-rootfs.tar`,
        ...extra,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => c.toString().includes('listening') && resolve());
      child.on('exit', (code) => reject(new Error(`test registry exited ${code}`)));
    });
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    return {
      port: rport,
      stop: async () => {
        child.kill('SIGTERM');
        await exited;
      },
    };
  }

  it('a real pull before the start: pulling with progress, then running; gc removes the image later', async () => {
    const reg = await registry(['--name', 'flotilla/app', '--tag', 'v1', '--chunk-ms', '150']);
    try {
      const image = `127.0.0.1:${reg.port}/flotilla/app:v1`;
      const name = `${uniq('pulled')}.service`;
      const p = port++;
      const path = await writeUnit(
        cli,
        name,
        `[Container]\nImage=${image}\nExec=httpd -f -p ${p} -h /etc\nNetwork=host\nStopTimeout=1\n[X-Fleet]\nMachineMetadata=name=${PIN}\n`,
      );
      created.push(name);
      const seen = new Set<string>();
      let done = false;
      let progress = { current: 0, total: 0 };
      const watcher = (async () => {
        while (!done) {
          const out = await ctlOk(cli, 'list-units', '-o', 'json').catch(() => '{}');
          const rows =
            (
              JSON.parse(out) as {
                units?: {
                  unit: string;
                  active: string | null;
                  sub: string | null;
                  pull: { current: number; total: number } | null;
                }[];
              }
            ).units ?? [];
          const x = rows.find((st) => st.unit === name);
          if (x) seen.add(`${x.active}/${x.sub}`);
          if (x?.pull && x.pull.current > progress.current) progress = x.pull;
          await sleep(150);
        }
      })();
      const r = await ctl(cli, 'start', path);
      done = true;
      await watcher;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`Pulling ${image} for ${name}`);
      expect(seen).toContain('activating/pulling');
      // progress was published while the layer came in (bytes of the one ~1 MB layer)
      expect(progress.total).toBeGreaterThan(100_000);
      expect(progress.current).toBeGreaterThan(0);
      expect(
        (
          await inMachineOk(
            PIN,
            'docker',
            'image',
            'inspect',
            '-f',
            '{{index .Config.Labels "flotilla.test"}}',
            image,
          )
        ).trim(),
      ).toBe('registry');
      await waitFor('serving', async () => !(await get(p)).startsWith('error'), 10_000);
      const ledger = JSON.parse(
        await inMachineOk(PIN, 'cat', '/var/lib/flotilla/docker-images.json'),
      ) as Record<string, unknown>;
      expect(ledger).toHaveProperty([image]);

      // used by a unit: kept
      expect(await ctlOk(PIN, 'gc', '--dry-run')).toContain(`Kept image ${image}: used by ${name}`);
      // no unit uses it any more: the image goes (the stop removed the container)
      expect((await ctl(cli, 'destroy', name)).code).toBe(0);
      const cname = `flotilla-${name.replace(/\.service$/, '')}`;
      await waitFor(
        'container removed by the stop',
        async () => (await containerOf(PIN, cname)) === undefined,
        30_000,
      );
      const g = await ctlOk(PIN, 'gc');
      expect(g).toContain(`Removed image ${image}`);
      expect((await inMachine(PIN, 'docker', 'image', 'inspect', image)).code).not.toBe(0);
    } finally {
      await reg.stop();
    }
  });

  it('a registry that does not answer: the unit shows pulling, then fails with the reason', async () => {
    const reg = await registry(['--hang']);
    let stopped = false;
    try {
      const image = `127.0.0.1:${reg.port}/flotilla/slow:1`;
      const name = `${uniq('hang')}.service`;
      const path = await writeUnit(
        cli,
        name,
        `[Container]\nImage=${image}\n[X-Fleet]\nMachineMetadata=name=${PIN}\n`,
      );
      created.push(name);
      expect((await ctl(cli, 'start', '--no-block', path)).code).toBe(0);
      const pulling = await waitFor(
        'pulling',
        async () => {
          const x = await row(name);
          return x?.sub === 'pulling' ? x : undefined;
        },
        15_000,
      );
      expect(pulling).toMatchObject({ active: 'activating', sub: 'pulling', image });
      await sleep(2000);
      expect((await row(name))?.sub).toBe('pulling');
      await reg.stop();
      stopped = true;
      const failed = await waitFor(
        'failed',
        async () => {
          const x = await row(name);
          return x?.active === 'failed' ? x : undefined;
        },
        60_000,
      );
      expect(failed.reason).toMatch(new RegExp(`^image pull failed: ${image.replace(/[.:/]/g, '\\$&')}: `));
    } finally {
      if (!stopped) await reg.stop();
    }
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
    // a container that failed on its own is kept for inspection: gc removes it
    const name = `${uniq('gc')}.service`;
    const path = await writeUnit(
      cli,
      name,
      `[Container]\nImage=busybox:latest\nExec=sh -c "sleep 1; exit 3"\nNetwork=none\n[X-Fleet]\nMachineMetadata=name=${PIN}\n`,
    );
    created.push(name);
    await ctl(cli, 'start', path);
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
