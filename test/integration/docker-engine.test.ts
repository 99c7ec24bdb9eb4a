/**
 * The Docker port (DockerodeEngine) and the container runner against the real Docker engine of the
 * test environment (the host engine; no machines, so no testbed lock). Images are built locally
 * (tags of the imported busybox); pulls go to a registry on 127.0.0.1 that does not exist.
 * Every container carries a per-run machine label and is removed in afterAll.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerodeEngine } from '../../src/docker/dockerode.js';
import type { RunSpec } from '../../src/container/generate.js';
import type { ContainerEvent } from '../../src/docker/port.js';
import { readStatus, runContainer, cleanupContainer, type RunnerIo } from '../../src/container/runner.js';
import { parseContainerSection } from '../../src/container/spec.js';
import { isCode } from '../../src/lib/errors.js';
import { UnitFile } from '../../src/unit/index.js';
import { describeDocker, dockerSocket } from '../support/testbed.js';

const RUN = Math.random().toString(16).slice(2, 10);
const MACHINE = `test-${RUN}`;
const IMAGE = `flotilla-test/app:${RUN}`;
let docker: DockerodeEngine;
let dir: string;

function sh(...args: string[]): string {
  return execFileSync('docker', ['-H', `unix://${dockerSocket}`, ...args], { encoding: 'utf8' });
}

function runSpec(unit: string, container: string): RunSpec {
  const spec = parseContainerSection(unit, UnitFile.parse(`[Container]\n${container}\n`));
  return {
    version: 1,
    unit,
    unitHash: 'h'.repeat(40),
    machineID: MACHINE,
    dockerSocket: dockerSocket!,
    statusFile: join(dir, `${unit}.status.json`),
    container: spec,
  };
}

/** A runner with captured output and a stop button. */
function io(): RunnerIo & { out: () => string; err: () => string; stop: () => void; ready: Promise<void> } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c: Buffer) => (o += c.toString()));
  stderr.on('data', (c: Buffer) => (e += c.toString()));
  let stop!: () => void;
  let ready!: () => void;
  const readyP = new Promise<void>((r) => (ready = r));
  return {
    stdout,
    stderr,
    notify: (...a: string[]) => {
      if (a.includes('READY=1')) ready();
      return Promise.resolve();
    },
    stopRequested: new Promise<void>((r) => (stop = r)),
    out: () => o,
    err: () => e,
    stop: () => stop(),
    ready: readyP,
  };
}

async function until<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  ms = 20_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describeDocker('Docker port and container runner (real dockerd)', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-docker-'));
    docker = new DockerodeEngine({ socketPath: dockerSocket! });
    sh('tag', 'busybox:latest', IMAGE); // "built locally": no registry is reachable
  });
  afterAll(async () => {
    for (const c of await docker.listContainers({ labels: [`flotilla.machine=${MACHINE}`] }))
      await docker.removeContainer(c.id, { force: true });
    for (const n of [`flotilla-foreign-${RUN}`])
      await docker.removeContainer(n, { force: true }).catch(() => 0);
    await docker.removeImage(IMAGE).catch(() => undefined);
    docker.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ping, image inspect, and a clear error when the socket is missing', async () => {
    await docker.ping();
    const img = await docker.inspectImage(IMAGE);
    expect(img?.repoTags).toContain(IMAGE);
    expect(await docker.inspectImage(`flotilla-test/none:${RUN}`)).toBeUndefined();
    const gone = new DockerodeEngine({ socketPath: join(dir, 'no.sock') });
    await expect(gone.ping()).rejects.toSatisfy(
      (e: Error) =>
        isCode(e, 'E_DOCKER_UNAVAILABLE') && /does not exist \(is dockerd running\?\)/.test(e.message),
    );
    await expect(gone.inspectImage('busybox')).rejects.toSatisfy((e: Error) =>
      isCode(e, 'E_DOCKER_UNAVAILABLE'),
    );
  });

  it('a pull from an unreachable registry fails with dockerd’s reason, quickly', async () => {
    const t0 = Date.now();
    const err = await docker.pullImage(`127.0.0.1:1/flotilla/missing:${RUN}`).catch((e: Error) => e);
    expect(isCode(err, 'E_IMAGE_PULL')).toBe(true);
    expect((err as Error).message).toMatch(
      /^image pull failed: 127\.0\.0\.1:1\/flotilla\/missing:\w+: .*connection refused/,
    );
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('events: start, die with the exit code, destroy, filtered by label', async () => {
    const seen: ContainerEvent[] = [];
    let connected = false;
    const stream = docker.events({
      labels: [`flotilla.machine=${MACHINE}`],
      onEvent: (e) => seen.push(e),
      onConnected: () => (connected = true),
    });
    await until('events connected', () => connected);
    const id = await docker.createContainer({
      name: `flotilla-ev-${RUN}`,
      image: IMAGE,
      cmd: ['sh', '-c', 'exit 7'],
      network: 'none',
      labels: { 'flotilla.machine': MACHINE, 'flotilla.unit': 'ev.service' },
    });
    await docker.startContainer(id);
    expect(await docker.waitContainer(id)).toBe(7);
    await docker.removeContainer(id);
    await until('destroy event', () => seen.some((e) => e.kind === 'destroy'));
    stream.close();
    expect(seen.map((e) => e.kind)).toEqual(['create', 'start', 'die', 'destroy']);
    expect(seen[2]).toMatchObject({ kind: 'die', exitCode: 7, name: `flotilla-ev-${RUN}` });
    expect(seen[0]!.labels).toMatchObject({ 'flotilla.unit': 'ev.service' });
  });

  it('runner: starts with labels, env and health, streams output, stops gracefully (exit 0)', async () => {
    writeFileSync(join(dir, 'app.env'), '# comment\nFROM_FILE=file\nOVERRIDE=file\n');
    const run = runSpec(
      'app.service',
      [
        `Image=${IMAGE}`,
        `Name=flotilla-app-${RUN}`,
        `Exec=sh -c "echo hello $FROM_FILE $OVERRIDE $PLAIN; echo to-stderr >&2; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"`,
        'Environment=OVERRIDE=env "PLAIN=two words"',
        `EnvironmentFile=${join(dir, 'app.env')}`,
        `EnvironmentFile=-${join(dir, 'absent.env')}`,
        'Network=none',
        'Label=tier=test',
        'StopTimeout=5',
        'HealthCmd=true',
        'HealthInterval=1s',
      ].join('\n'),
    );
    const x = io();
    const done = runContainer(run, docker, x);
    await x.ready;
    const info = await docker.inspectContainer(`flotilla-app-${RUN}`);
    expect(info).toMatchObject({ running: true, image: IMAGE });
    expect(info!.labels).toMatchObject({
      'flotilla.unit': 'app.service',
      'flotilla.machine': MACHINE,
      'flotilla.unit-hash': 'h'.repeat(40),
      tier: 'test',
    });
    expect(readStatus(run.statusFile)).toMatchObject({ phase: 'running', containerId: info!.id });
    await until('output', () => x.out().includes('hello file env two words'));
    await until('stderr', () => x.err().includes('to-stderr'));
    await until('healthy', async () => (await docker.inspectContainer(info!.id))?.health === 'healthy');
    x.stop();
    expect(await done).toBe(0);
    await until('bye', () => x.out().includes('bye'));
    expect(readStatus(run.statusFile)).toMatchObject({ phase: 'exited', exitCode: 0 });
    // a requested stop removes the container
    expect(await docker.inspectContainer(info!.id)).toBeUndefined();
  });

  it('runner: the container’s exit code and a reason when it fails', async () => {
    const run = runSpec(
      'fail.service',
      `Image=${IMAGE}\nName=flotilla-fail-${RUN}\nExec=sh -c "exit 3"\nNetwork=none`,
    );
    const x = io();
    expect(await runContainer(run, docker, x)).toBe(3);
    expect(readStatus(run.statusFile)).toMatchObject({
      phase: 'failed',
      kind: 'container',
      reason: 'container exited with status 3',
      exitCode: 3,
    });
    expect(x.err()).toContain('container exited with status 3');
  });

  it('runner: a stale container of ours is replaced; one that is not ours is never touched', async () => {
    const run = runSpec(
      'stale.service',
      `Image=${IMAGE}\nName=flotilla-stale-${RUN}\nExec=sleep 1000\nNetwork=none\nStopTimeout=1`,
    );
    // a leftover from an earlier run of this unit, still running
    const old = await docker.createContainer({
      name: `flotilla-stale-${RUN}`,
      image: IMAGE,
      cmd: ['sleep', '1000'],
      network: 'none',
      labels: { 'flotilla.unit': 'stale.service', 'flotilla.machine': MACHINE },
    });
    await docker.startContainer(old);
    const x = io();
    const done = runContainer(run, docker, x);
    await x.ready;
    expect(await docker.inspectContainer(old)).toBeUndefined();
    expect(x.err()).toContain(`removing the stale container flotilla-stale-${RUN}`);
    x.stop();
    expect(await done).toBe(0);

    // not ours: no labels
    sh('run', '-d', '--name', `flotilla-foreign-${RUN}`, '--network', 'none', IMAGE, 'sleep', '1000');
    const foreign = runSpec('foreign.service', `Image=${IMAGE}\nName=flotilla-foreign-${RUN}\nNetwork=none`);
    const y = io();
    expect(await runContainer(foreign, docker, y)).toBe(1);
    expect(readStatus(foreign.statusFile)).toMatchObject({
      phase: 'failed',
      kind: 'config',
      reason: `a container named flotilla-foreign-${RUN} already exists and it was not created by flotilla; flotilla will not remove it (remove or rename it, or set Name= in [Container])`,
    });
    expect((await docker.inspectContainer(`flotilla-foreign-${RUN}`))?.running).toBe(true);
  });

  it('runner: nothing is created when the start cannot be complete', async () => {
    const cases: [string, string, RegExp][] = [
      [
        'envfile.service',
        `Image=${IMAGE}\nEnvironmentFile=${join(dir, 'missing.env')}`,
        /EnvironmentFile .*missing\.env: does not exist on this machine/,
      ],
      [
        'never.service',
        `Image=flotilla-test/absent:${RUN}\nPullPolicy=never`,
        /is not present on this machine \(PullPolicy=never\)/,
      ],
      [
        'pull.service',
        `Image=127.0.0.1:1/flotilla/absent:${RUN}`,
        /^image pull failed: .*connection refused/,
      ],
      [
        'exec.service',
        `Image=${IMAGE}\nExec=/no/such/binary\nNetwork=none`,
        /start container flotilla-exec: .*no such file/,
      ],
    ];
    for (const [unit, body, reason] of cases) {
      const run = runSpec(unit, body);
      expect(await runContainer(run, docker, io()), unit).toBe(1);
      expect(readStatus(run.statusFile)?.reason, unit).toMatch(reason);
      // a container that failed to start is removed again
      expect(await docker.inspectContainer(run.container.name), unit).toBeUndefined();
    }
  });

  it('cleanup stops a container left running (runner killed) and leaves foreign ones alone', async () => {
    const run = runSpec(
      'orphan.service',
      `Image=${IMAGE}\nName=flotilla-orphan-${RUN}\nExec=sleep 1000\nNetwork=none\nStopTimeout=1`,
    );
    const id = await docker.createContainer({
      name: `flotilla-orphan-${RUN}`,
      image: IMAGE,
      cmd: ['sleep', '1000'],
      network: 'none',
      labels: { 'flotilla.unit': 'orphan.service', 'flotilla.machine': MACHINE },
    });
    await docker.startContainer(id);
    const lines: string[] = [];
    await cleanupContainer(run, docker, (l) => lines.push(l));
    expect((await docker.inspectContainer(id))?.running).toBe(false);
    expect(lines.join('\n')).toContain('stopping container');
    const foreign = runSpec('x.service', `Image=${IMAGE}\nName=flotilla-foreign-${RUN}`);
    await cleanupContainer(foreign, docker, () => undefined);
    expect((await docker.inspectContainer(`flotilla-foreign-${RUN}`))?.running).toBe(true);
  });

  it('the runner process (runner-main, slim dockerode): runs, and SIGTERM stops the container gracefully', async () => {
    const run = runSpec(
      'proc.service',
      `Image=${IMAGE}\nName=flotilla-proc-${RUN}\nExec=sh -c "echo up; trap 'echo down; exit 0' TERM; while true; do sleep 0.1; done"\nNetwork=none`,
    );
    const specPath = join(dir, 'proc.json');
    writeFileSync(specPath, JSON.stringify(run));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/container/runner-main.ts', 'run', specPath],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await until('running', () => readStatus(run.statusFile)?.phase === 'running', 30_000);
    await until('output', () => out.includes('up'));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('down');
    expect(readStatus(run.statusFile)).toMatchObject({ phase: 'exited', exitCode: 0 });
    expect(await docker.inspectContainer(`flotilla-proc-${RUN}`)).toBeUndefined();
    // the runner never loaded what it does not need
    expect(out).not.toContain('is not loaded in the flotilla container runner');
  });

  it('logs: the last lines of both streams', async () => {
    const id = await docker.createContainer({
      name: `flotilla-logs-${RUN}`,
      image: IMAGE,
      // dockerd copies stdout and stderr separately: without a pause the stderr line can be logged
      // before the last stdout lines, and `tail: 3` then misses it.
      cmd: ['sh', '-c', 'for i in 1 2 3 4 5; do echo out$i; done; sleep 0.5; echo err >&2'],
      network: 'none',
      labels: { 'flotilla.machine': MACHINE },
    });
    await docker.startContainer(id);
    await docker.waitContainer(id);
    // dockerd writes the last lines of a container asynchronously: they may come just after its exit
    const lines = await until('three lines', async () => {
      const l = await docker.logs(id, { tail: 3 });
      return l.some((x) => x.text === 'err') && l.length === 3 ? l : undefined;
    });
    expect(lines.map((l) => l.text).sort()).toEqual(['err', 'out4', 'out5']);
    expect(lines.find((l) => l.text === 'err')?.stream).toBe('stderr');
  });
});
