/**
 * The agent's container-unit hooks with the pure planner: pull before start, wait while pulling,
 * a failed pull is a failed unit with a reason and is not retried in a loop, Docker going away and
 * coming back. Docker is the in-memory FakeDocker (the real engine: test/integration/docker-*).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  planAgent,
  type AgentAction,
  type DesiredUnit,
  type ObservedUnit,
} from '../../../src/agent/planner.js';
import { ContainerUnits, type ContainerUnitsDeps } from '../../../src/container/units.js';
import { FakeClock } from '../../../src/lib/fake-clock.js';
import { plainUnitHooks } from '../../../src/agent/unit-hooks.js';
import { writeStatus } from '../../../src/container/runner.js';
import type { UnitStateRecord } from '../../../src/registry/types.js';
import { nullLogger } from '../../../src/lib/log.js';
import { UnitFile } from '../../../src/unit/index.js';
import { FakeDocker } from '../../../src/docker/fake.js';

const ME = 'cafebabe00000000000000000000cafe';
const BODY = '[Container]\nImage=127.0.0.1:1/app:1\nExec=sleep 1000\n';
const HASH = UnitFile.parse(BODY).hash();

let dir: string;
let docker: FakeDocker;
let cu: ContainerUnits;
let triggers = 0;
let published: string[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-cu-'));
  docker = new FakeDocker();
  triggers = 0;
  published = [];
  cu = new ContainerUnits(deps());
});

function deps(): ContainerUnitsDeps {
  return {
    docker,
    machineID: ME,
    dockerSocket: '/var/run/docker.sock',
    specDir: join(dir, 'containers'),
    dataDir: dir,
    log: nullLogger,
    trigger: () => triggers++,
    publish: (n) => published.push(n),
    runner: { node: '/usr/bin/node', entry: '/opt/flotilla/dist/docker/runner-main.js' },
    progressEveryMs: 0,
  };
}
afterEach(() => {
  cu.close();
  rmSync(dir, { recursive: true, force: true });
});

const tick = () => new Promise((r) => setTimeout(r, 0));

function want(desiredState: 'launched' | 'loaded' = 'launched', body = BODY): DesiredUnit {
  return { name: 'app.service', hash: UnitFile.parse(body).hash(), desiredState, body };
}

/** One reconcile as the agent does it: prepare, plan, then "execute" pulls through the hook. */
async function reconcile(
  d: DesiredUnit,
  o: ObservedUnit | undefined,
): Promise<{ actions: AgentAction[]; observed: Map<string, ObservedUnit> }> {
  const seen = new Map<string, ObservedUnit>(o ? [['app.service', o]] : []);
  const { desired, observed } = await cu.prepare([d], seen);
  const actions = planAgent({ machineID: ME, desired, observed, registryAvailable: true });
  for (const a of actions) if (a.type === 'pull') cu.pull(a.name, a.image);
  await tick();
  return { actions, observed };
}

const types = (a: AgentAction[]) => a.filter((x) => x.type !== 'report-state').map((x) => x.type);
const inactive: ObservedUnit = { loadState: 'loaded', activeState: 'inactive', subState: 'dead', hash: HASH };
const failedUnit: ObservedUnit = {
  loadState: 'loaded',
  activeState: 'failed',
  subState: 'failed',
  hash: HASH,
};

/** The unit is installed, its image present, and its runner recorded a failure because of Docker. */
function failedByDocker(reason: string, at: number): void {
  cu.prepareInstall('app.service', HASH, BODY);
  docker.images.add('127.0.0.1:1/app:1');
  writeStatus(cu.statusPath('app.service'), {
    unit: 'app.service',
    phase: 'failed',
    kind: 'docker',
    reason,
    at,
  });
}

function record(activeState = 'inactive', subState = 'dead'): UnitStateRecord {
  return { name: 'app.service', machineID: ME, hash: HASH, loadState: 'loaded', activeState, subState };
}

describe('ContainerUnits', () => {
  it('installs the generated service and writes the run spec', () => {
    const text = cu.prepareInstall('app.service', HASH, BODY);
    const gen = UnitFile.parse(text);
    expect(gen.get('Service', 'ExecStart')).toContain('runner-main.js run');
    const spec = JSON.parse(readFileSync(cu.specPath('app.service'), 'utf8')) as {
      unit: string;
      machineID: string;
    };
    expect(spec).toMatchObject({ unit: 'app.service', machineID: ME, unitHash: HASH });
    // a plain unit is installed as written
    expect(cu.prepareInstall('plain.service', 'h', '[Service]\nExecStart=/bin/true\n')).toBe(
      '[Service]\nExecStart=/bin/true\n',
    );
  });

  it('prepare returns new planner inputs and leaves the given ones as they were', async () => {
    docker.holdPulls = true;
    const d = want();
    const o = new Map<string, ObservedUnit>([['app.service', inactive]]);
    const before = { d: structuredClone(d), o: structuredClone(o) };
    await reconcile(d, inactive); // a pull is now in flight: prepare has something to overlay
    const out = await cu.prepare([d], o);
    expect(out.desired[0]).toMatchObject({ beforeStart: { wait: 'pulling 127.0.0.1:1/app:1' } });
    expect(out.observed.get('app.service')).toMatchObject({ activeState: 'activating' });
    expect(d).toEqual(before.d);
    expect(o).toEqual(before.o);
    const rec = record();
    const dec = cu.decorate(rec);
    expect(dec.subState).toBe('pulling');
    expect(rec).toEqual(record());
    docker.held.shift()!();
  });

  it('plain units (no Docker) get the null hooks: install as written, a pull fails the unit', async () => {
    const o = new Map<string, ObservedUnit>([['app.service', inactive]]);
    const out = await plainUnitHooks.prepare([want()], o);
    expect(out.desired).toEqual([want()]);
    expect(out.observed).not.toBe(o);
    expect(plainUnitHooks.prepareInstall('app.service', HASH, BODY)).toBe(BODY);
    expect(() => plainUnitHooks.pull('app.service', 'x')).toThrow(/not supported by this agent/);
    expect(plainUnitHooks.decorate(record())).toEqual(record());
    expect(plainUnitHooks.installedHash(UnitFile.parse(BODY))).toBe(HASH);
  });

  it('refuses an invalid [Container] section at install (the unit fails, with the reason)', () => {
    expect(() => cu.prepareInstall('bad.service', 'h', '[Container]\nImage=busybox;reboot\n')).toThrow(
      /Image="busybox;reboot": contains ";"/,
    );
  });

  it('pulls a missing image before the start, shows pulling, then starts', async () => {
    docker.holdPulls = true;
    const first = await reconcile(want(), undefined);
    expect(types(first.actions)).toEqual(['install', 'load', 'pull']);
    expect(docker.pulls).toEqual(['127.0.0.1:1/app:1']);

    // While the pull runs: no start, no second pull, the state says pulling.
    const during = await reconcile(want(), inactive);
    expect(types(during.actions)).toEqual([]);
    expect(during.observed.get('app.service')).toMatchObject({
      activeState: 'activating',
      subState: 'pulling',
    });
    const rec = cu.decorate(record());
    expect(rec).toMatchObject({ activeState: 'activating', subState: 'pulling' });
    expect(rec.pull).toMatchObject({ image: '127.0.0.1:1/app:1', current: 50, total: 100 });

    docker.held.shift()!();
    await tick();
    await tick();
    expect(triggers).toBeGreaterThan(0);
    const after = await reconcile(want(), inactive);
    expect(types(after.actions)).toEqual(['start']);
    expect(docker.pulls).toHaveLength(1);
    // the ledger knows flotilla pulled it
    expect(JSON.parse(readFileSync(join(dir, 'docker-images.json'), 'utf8'))).toHaveProperty([
      '127.0.0.1:1/app:1',
    ]);
  });

  it('starts at once when the image is present; never pulls with PullPolicy=never', async () => {
    docker.images.add('127.0.0.1:1/app:1');
    expect(types((await reconcile(want(), inactive)).actions)).toEqual(['start']);
    const never = want('launched', `${BODY}PullPolicy=never\n`);
    docker.images.clear();
    expect(types((await reconcile(never, { ...inactive, hash: never.hash })).actions)).toEqual(['start']);
    expect(docker.pulls).toEqual([]);
  });

  it('a failed pull is a failed unit with the reason, and is not retried until the unit is started again', async () => {
    docker.pullFailures.set('127.0.0.1:1/app:1', 'dial tcp 127.0.0.1:1: connect: connection refused');
    await reconcile(want(), inactive);
    await tick();
    await tick();
    for (let i = 0; i < 5; i++) {
      const r = await reconcile(want(), inactive);
      expect(types(r.actions)).toEqual([]);
      expect(r.observed.get('app.service')).toMatchObject({ activeState: 'failed', subState: 'failed' });
    }
    expect(docker.pulls).toHaveLength(1);
    const rec = cu.decorate(record());
    expect(rec.activeState).toBe('failed');
    expect(rec.reason).toBe(
      'image pull failed: 127.0.0.1:1/app:1: dial tcp 127.0.0.1:1: connect: connection refused',
    );

    // stop (desired loaded) clears it; start again pulls once more
    expect(types((await reconcile(want('loaded'), inactive)).actions)).toEqual([]);
    expect(types((await reconcile(want(), inactive)).actions)).toEqual(['pull']);
    expect(docker.pulls).toHaveLength(2);
  });

  it('PullPolicy=always pulls once per start, even when the image is there', async () => {
    const always = want('launched', `${BODY}PullPolicy=always\n`);
    const o = { ...inactive, hash: always.hash };
    docker.images.add('127.0.0.1:1/app:1');
    expect(types((await reconcile(always, o)).actions)).toEqual(['pull']);
    await tick();
    await tick();
    expect(types((await reconcile(always, o)).actions)).toEqual(['start']);
    expect(
      types((await reconcile(always, { ...o, activeState: 'active', subState: 'running' })).actions),
    ).toEqual([]);
    expect(docker.pulls).toHaveLength(1);
  });

  it('Docker away: not started, failed with "docker unavailable"; back: tried again once', async () => {
    cu.start();
    await tick();
    docker.goAway();
    const r = await reconcile(want(), inactive);
    expect(types(r.actions)).toEqual([]);
    const rec = cu.decorate(record());
    expect(rec.activeState).toBe('failed');
    expect(rec.reason).toMatch(/^docker unavailable: /);
    expect(types((await reconcile(want(), inactive)).actions)).toEqual([]);

    docker.images.add('127.0.0.1:1/app:1');
    docker.comeBack();
    expect(types((await reconcile(want(), inactive)).actions)).toEqual(['start']);
  });

  it('a unit whose runner failed because Docker went away runs again when Docker is back (once)', async () => {
    cu.start();
    await tick();
    failedByDocker('docker unavailable: the events stream ended', Date.now());
    docker.goAway();
    expect(types((await reconcile(want(), failedUnit)).actions)).toEqual([]);
    const rec = cu.decorate(record('failed', 'failed'));
    expect(rec.reason).toBe('docker unavailable: the events stream ended');

    docker.comeBack();
    const back = await reconcile(want(), failedUnit);
    expect(types(back.actions)).toEqual(['stop', 'start']);
    expect(back.actions.find((a) => a.type === 'start')?.reason).toMatch(/^Docker is back/);
    // the same failure again in the same Docker epoch: no loop
    expect(types((await reconcile(want(), failedUnit)).actions)).toEqual([]);
  });

  it('retries after Docker is back are bounded: 3, at least 12 s apart (systemd’s start limit)', async () => {
    // Time by the Clock port: a FakeClock moves only when the test says so (no patched globals).
    const clock = new FakeClock(Date.now());
    cu.close();
    cu = new ContainerUnits({ ...deps(), clock });
    cu.start();
    await tick();
    failedByDocker('docker unavailable: x', clock.now());
    docker.goAway();
    docker.comeBack();
    const plans: string[][] = [];
    for (let i = 0; i < 6; i++) {
      plans.push(types((await reconcile(want(), failedUnit)).actions));
      plans.push(types((await reconcile(want(), failedUnit)).actions)); // at once: nothing
      clock.advance(12_500);
    }
    expect(plans.filter((p) => p.length > 0)).toEqual([
      ['stop', 'start'],
      ['stop', 'start'],
      ['stop', 'start'],
    ]);
  });

  it('a container that exits non-zero fails the unit with that reason; no restart by the agent', async () => {
    cu.prepareInstall('app.service', HASH, BODY);
    writeStatus(cu.statusPath('app.service'), {
      unit: 'app.service',
      phase: 'failed',
      kind: 'container',
      reason: 'container exited with status 3',
      exitCode: 3,
      at: Date.now(),
    });
    docker.images.add('127.0.0.1:1/app:1');
    cu.start();
    await tick();
    expect(types((await reconcile(want(), failedUnit)).actions)).toEqual([]);
    const rec = cu.decorate(record('failed', 'failed'));
    expect(rec.reason).toBe('container exited with status 3');
  });

  it('tracks the container (state, health) from events and republishes', async () => {
    cu.prepareInstall('app.service', HASH, BODY);
    cu.start();
    await tick();
    const labels = { 'flotilla.unit': 'app.service', 'flotilla.machine': ME };
    docker.emit({
      kind: 'start',
      id: 'a'.repeat(64),
      name: 'flotilla-app',
      image: '127.0.0.1:1/app:1',
      labels,
      timeNano: 1,
    });
    docker.emit({ kind: 'health_status', id: 'a'.repeat(64), labels, health: 'healthy', timeNano: 2 });
    // another machine's container (shared engine) is ignored
    docker.emit({
      kind: 'die',
      id: 'b'.repeat(64),
      labels: { ...labels, 'flotilla.machine': 'other' },
      timeNano: 3,
    });
    await new Promise((r) => setTimeout(r, 80));
    expect(published).toEqual(['app.service']);
    const rec = cu.decorate(record('active', 'running'));
    expect(rec.container).toEqual({
      name: 'flotilla-app',
      image: '127.0.0.1:1/app:1',
      id: 'aaaaaaaaaaaa',
      state: 'running',
      health: 'healthy',
    });
  });
});
