/**
 * `npm run bench -- docker-units [--runs 10] [--machine m2]` (part of `npm run bench -- docker`)
 *
 * Overhead of a container unit against a plain `docker run` unit of the same image and command, in
 * the same run, on one test machine with its own Docker engine (test/env/docker.sh up --machines):
 *
 *   container unit   [Container] Image=busybox:latest, Exec=<cmd>, Network=none, StopTimeout=2
 *                    (the agent checks the image, runs the generated Type=notify service: the runner
 *                    removes a stale container, creates, starts, follows the logs, READY=1)
 *   plain unit       ExecStartPre=-/usr/bin/docker rm -f NAME
 *                    ExecStart=/usr/bin/docker run --rm --name NAME --network none busybox:latest <cmd>
 *                    ExecStop=/usr/bin/docker stop -t 2 NAME          (the usual CoreOS pattern)
 *
 * Both are flotilla units pinned to the machine and loaded (installed) beforehand; each run sets the
 * desired state to launched through the agent's API and measures until dockerd in the machine
 * reports the container's `start` event (dockerd's clock is the host's: same kernel); then loaded
 * again, and waits until the container is gone or exited and systemd has the unit inactive. The two
 * kinds alternate, first one then the other, so drift hits both. Reported: median and p90 per kind,
 * and the ratio of the medians (container / plain). For the container unit also: until systemd
 * reports the unit active (READY=1: the runner saw the container start).
 *
 * Needs root, the machines, their Docker engines and a flotilla cluster of this checkout:
 *   npm run build && TESTENV_MACHINE_PROJECT=$PWD flock /tmp/flotilla-testbed.lock npm run bench -- docker
 * (it runs `docker.sh up --machines` and `cluster.sh wipe` + `up` itself).
 */
import { readFileSync } from 'node:fs';
import { ApiClient } from '../src/cli/client.js';
import { DockerodeEngine } from '../src/docker/dockerode.js';
import type { ContainerEvent } from '../src/docker/port.js';
import { DbusSystemdManager } from '../src/systemd/dbus-manager.js';
import { allMachines, freshCluster, sleep, waitFor } from '../test/support/cluster.js';
import { env, machineBusAddress } from '../test/support/testbed.js';
import { percentile } from './stats.js';
import { printTable } from './table.js';

export const DOCKER_UNITS_HEADER = [
  'measure (busybox, own engine in the machine)',
  'n',
  'median',
  'p90',
  'unit',
];
type Row = (string | number)[];

const CMD = `sh -c "trap 'exit 0' TERM; sleep 100000 & wait"`;

function parseArgs(args: string[]): { runs: number; machine: string } {
  let runs = 10;
  let machine = 'm2';
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--runs') runs = Number(args[++i]);
    else if (a === '--machine') machine = args[++i]!;
    else if (!a.startsWith('--'))
      continue; // part selectors of the umbrella bench
    else throw new Error(`docker-units: unknown option ${a}`);
  }
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  return { runs, machine };
}

function pid1(m: string): string {
  const state = process.env.TESTENV_RUN ?? '/run/flotilla-testenv';
  return readFileSync(`${state}/machines/${m}/pid1`, 'utf8').trim();
}

const options = (body: string) =>
  body.split('\n').reduce<{ section: string; out: { section: string; name: string; value: string }[] }>(
    (acc, line) => {
      const l = line.trim();
      if (l.startsWith('[')) acc.section = l.slice(1, -1);
      else if (l.includes('=')) {
        const i = l.indexOf('=');
        acc.out.push({ section: acc.section, name: l.slice(0, i), value: l.slice(i + 1) });
      }
      return acc;
    },
    { section: '', out: [] },
  ).out;

export async function dockerUnitsBench(args: string[]): Promise<Row[]> {
  const { runs, machine } = parseArgs(args);
  if (!allMachines.includes(machine)) throw new Error(`no machine ${machine}`);
  env('docker.sh', 'up', '--machines', machine);
  await freshCluster();

  const root = `/proc/${pid1(machine)}/root`;
  const api = new ApiClient({ endpoint: `unix://${root}/run/fleet.sock`, timeoutMs: 10_000 });
  const docker = new DockerodeEngine({ socketPath: `${root}/run/docker.sock` });
  const systemd = await DbusSystemdManager.connect({ address: machineBusAddress(machine) });
  const stamp = Date.now().toString(36);
  const cu = `bench-cu-${stamp}.service`;
  const plain = `bench-plain-${stamp}.service`;
  const cuContainer = `flotilla-bench-cu-${stamp}`;
  const plainContainer = `bench-plain-${stamp}`;
  const pin = `[X-Fleet]\nMachineMetadata=name=${machine}\n`;
  const bodies: Record<string, string> = {
    [cu]: `[Unit]\nDescription=bench container unit\n[Container]\nImage=busybox:latest\nExec=${CMD}\nNetwork=none\nStopTimeout=2\n${pin}`,
    [plain]: [
      '[Unit]',
      'Description=bench plain docker run unit',
      '[Service]',
      `ExecStartPre=-/usr/bin/docker rm -f ${plainContainer}`,
      `ExecStart=/usr/bin/docker run --rm --name ${plainContainer} --network none busybox:latest ${CMD}`,
      `ExecStop=/usr/bin/docker stop -t 2 ${plainContainer}`,
      pin,
    ].join('\n'),
  };

  const starts = new Map<string, number>(); // container name → dockerd's start time (ms)
  const gone = new Set<string>();
  const events = docker.events({
    onEvent: (e: ContainerEvent) => {
      if (!e.name) return;
      if (e.kind === 'start') starts.set(e.name, e.timeNano / 1e6);
      if (e.kind === 'die' || e.kind === 'destroy') gone.add(e.name);
    },
  });
  await waitFor('docker events connected', () => Promise.resolve(events.connected), 10_000, 100);

  const set = (name: string, desiredState: string) =>
    api.request('PUT', `/fleet/v1/units/${encodeURIComponent(name)}`, { name, desiredState });
  const samples: Record<string, number[]> = { [cu]: [], [plain]: [], ready: [] };
  try {
    for (const [name, body] of Object.entries(bodies)) {
      await api.request('PUT', `/fleet/v1/units/${encodeURIComponent(name)}`, {
        name,
        options: options(body),
        desiredState: 'loaded',
      });
    }
    for (const name of [cu, plain])
      await waitFor(
        `${name} installed in ${machine}`,
        async () => (await systemd.state(name)).loadState === 'loaded',
        30_000,
      );

    const one = async (name: string, container: string) => {
      starts.delete(container);
      gone.delete(container);
      const t0 = Date.now();
      await set(name, 'launched');
      const t1 = await waitFor(
        `${container} started`,
        () => Promise.resolve(starts.get(container)),
        60_000,
        5,
      );
      samples[name]!.push(t1 - t0);
      if (name === cu) {
        await waitFor(
          `${name} active`,
          async () => (await systemd.state(name)).activeState === 'active',
          30_000,
          5,
        );
        const st = await systemd.state(name);
        if (st.activeEnterTimestamp) samples.ready!.push(st.activeEnterTimestamp - t0);
      }
      await set(name, 'loaded');
      await waitFor(
        `${container} stopped`,
        () => Promise.resolve(gone.has(container) || undefined),
        60_000,
        20,
      );
      await waitFor(
        `${name} inactive`,
        async () => (await systemd.state(name)).activeState === 'inactive',
        60_000,
        20,
      );
      await sleep(300);
    };
    // one warm-up of each (page cache, node's first start)
    await one(cu, cuContainer);
    await one(plain, plainContainer);
    samples[cu] = [];
    samples[plain] = [];
    samples.ready = [];
    for (let i = 0; i < runs; i++) {
      const order: [string, string][] =
        i % 2 === 0
          ? [
              [cu, cuContainer],
              [plain, plainContainer],
            ]
          : [
              [plain, plainContainer],
              [cu, cuContainer],
            ];
      for (const [n, c] of order) await one(n, c);
    }
  } finally {
    events.close();
    for (const name of [cu, plain])
      await api.request('DELETE', `/fleet/v1/units/${encodeURIComponent(name)}`).catch(() => 0);
    await docker.removeContainer(cuContainer, { force: true }).catch(() => 0);
    docker.close();
    await systemd.close();
  }
  const med = (xs: number[]) =>
    percentile(
      [...xs].sort((a, b) => a - b),
      50,
    );
  const p90 = (xs: number[]) =>
    percentile(
      [...xs].sort((a, b) => a - b),
      90,
    );
  const c = samples[cu];
  const p = samples[plain];
  return [
    ['start → container running: container unit', String(c.length), med(c), p90(c), 'ms'],
    ['start → container running: plain docker run unit', String(p.length), med(p), p90(p), 'ms'],
    ['overhead ratio (container / plain, medians)', String(c.length), med(c) / med(p), p90(c) / p90(p), 'x'],
    [
      'start → unit active (READY=1): container unit',
      String(samples.ready.length),
      med(samples.ready),
      p90(samples.ready),
      'ms',
    ],
  ];
}

export default async function main(args: string[]): Promise<void> {
  const rows = await dockerUnitsBench(args);
  printTable(
    'Container units: start overhead against a plain docker run unit (same run)',
    DOCKER_UNITS_HEADER,
    rows,
  );
}
