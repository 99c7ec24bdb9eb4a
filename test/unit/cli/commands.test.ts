/**
 * The unit commands end to end in-process: the CLI against the real API server and embedded
 * registry, with `simulateCluster` (harness.ts) playing engine and agents so blocking commands see
 * units move. Checks fleetctl's output lines, exit codes and what ends up in the registry.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { M1, MACHINES, simulateCluster, startApi, type Api } from './harness.js';

let api: Api;
let files: string;
let stopSim: (() => Promise<void>) | undefined;

const HELLO = '[Unit]\nDescription=Hello\n\n[Service]\nExecStart=/bin/sleep 1000\n';
const TEMPLATE = '[Unit]\nDescription=Web %i\n\n[Service]\nExecStart=/bin/sleep 1000\n';

beforeAll(async () => {
  api = await startApi();
  for (const m of MACHINES) await api.registry.registerMachine(m, api.lease);
});
afterAll(async () => {
  await api.close();
});
beforeEach(async () => {
  files = mkdtempSync(join(tmpdir(), 'flotilla-units-'));
  for (const j of await api.registry.listJobs()) await api.registry.destroyUnit(j.name);
  for (const s of await api.registry.listUnitStates()) await api.registry.clearUnitState(s.name, s.machineID);
  await api.registry.clearSchedule(
    api.guard,
    (await api.registry.listSchedules()).map((s) => s.name),
  );
});
afterEach(async () => {
  await stopSim?.();
  stopSim = undefined;
  rmSync(files, { recursive: true, force: true });
});

const file = (name: string, text: string) => {
  const p = join(files, name);
  writeFileSync(p, text);
  return p;
};
const job = (name: string) => api.registry.getJob(name);
const cluster = () => (stopSim = simulateCluster(api));

describe('submit', () => {
  it('MachineOf=%n (never schedulable) is said on stderr at submit; the unit is still created', async () => {
    const p = file('self.service', '[Service]\nExecStart=/bin/sleep 1\n[X-Fleet]\nMachineOf=%n\n');
    const r = await api.run(['submit', p]);
    expect(r.code).toBe(0);
    expect(r.out).toBe('Unit self.service inactive\n');
    expect(r.err).toBe(
      'Warning: unit self.service: MachineOf names the unit itself ("self.service", e.g. from %n): a unit cannot wait for itself, so it can never be scheduled\n',
    );
    expect(await job('self.service')).toMatchObject({ desiredState: 'inactive' });
  });

  it('creates units from local files, silently keeps identical ones, and warns about differing ones', async () => {
    const p = file('hello.service', HELLO);
    expect(await api.run(['submit', p])).toEqual({ code: 0, out: 'Unit hello.service inactive\n', err: '' });
    expect(await job('hello.service')).toMatchObject({ desiredState: 'inactive' });
    expect(await api.run(['submit', p])).toEqual({ code: 0, out: '', err: '' });
    writeFileSync(p, HELLO.replace('Hello', 'Changed'));
    expect(await api.run(['submit', p])).toEqual({
      code: 0,
      out: '',
      err: `WARNING: Unit hello.service in registry differs from local unit file ${p}. Add --replace to override.\n`,
    });
    const before = (await job('hello.service'))!.hash;
    expect(await api.run(['submit', '--replace', p])).toEqual({
      code: 0,
      out: 'Unit hello.service inactive\n',
      err: '',
    });
    expect((await job('hello.service'))!.hash).not.toBe(before);
    expect(await api.run(['submit', '--replace', p])).toEqual({
      code: 0,
      out: 'Found same Unit(hello.service) in Registry, nothing to do\n',
      err: '',
    });
  });

  it('appends .service to the path of an argument without a unit type, like fleetctl', async () => {
    file('bare.service', HELLO);
    expect(await api.run(['submit', join(files, 'bare')])).toMatchObject({
      code: 0,
      out: 'Unit bare.service inactive\n',
    });
  });

  it('keeps .target units as .target (fleetctl made them x.target.service)', async () => {
    const p = file('multi.target', '[Unit]\nDescription=Group\n');
    expect(await api.run(['submit', p])).toMatchObject({ code: 0, out: 'Unit multi.target inactive\n' });
    expect(await job('multi.target')).toBeDefined();
    expect(await job('multi.target.service')).toBeUndefined();
  });

  it('refuses a launched unit with --replace and says so', async () => {
    const p = file('hello.service', HELLO);
    await api.run(['submit', p]);
    await api.registry.setDesiredState('hello.service', 'launched');
    writeFileSync(p, HELLO.replace('Hello', 'Changed'));
    expect(await api.run(['submit', '--replace', p])).toEqual({
      code: 0,
      out: '',
      err: "Warning: can not replace Unit(hello.service) in state 'launched', use the appropriate command\n",
    });
  });

  it('reports fleet validation errors as "Error creating units", exit 1', async () => {
    const p = file('bad.service', '[Service]\nExecStart=/bin/true\n[X-Fleet]\nMachineID=abc\nGlobal=true\n');
    expect(await api.run(['submit', p])).toEqual({
      code: 1,
      out: '',
      err: 'Error creating units: MachineID cannot be used with Global\n',
    });
    const q = file('x.bogus', HELLO);
    const r = await api.run(['submit', q]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^Error creating units: /);
  });
});

describe('templates', () => {
  it('submit hello@.service, then start hello@{1..3}.service from the registry template', async () => {
    cluster();
    const p = file('web@.service', TEMPLATE);
    expect((await api.run(['submit', p])).out).toBe('Unit web@.service inactive\n');
    const r = await api.run(['start', 'web@1.service', 'web@2.service', 'web@3']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = r.out.split('\n').filter(Boolean);
    expect(lines.slice(0, 3)).toEqual([
      'Unit web@1.service inactive',
      'Unit web@2.service inactive',
      'Unit web@3.service inactive',
    ]);
    expect(lines.slice(3).sort()).toEqual(
      ['web@1.service', 'web@2.service', 'web@3.service'].map(
        (n) =>
          expect.stringMatching(
            new RegExp(`^Unit ${n} launched on [0-9a-f]{8}\\.\\.\\./10\\.214\\.0\\.1[12]$`),
          ) as unknown as string,
      ),
    );
    for (const n of ['web@1.service', 'web@2.service', 'web@3.service']) {
      expect(await job(n)).toMatchObject({
        desiredState: 'launched',
        hash: (await job('web@.service'))!.hash,
      });
    }
  });

  it('creates an instance from a local template file when the registry has none', async () => {
    file('api@.service', TEMPLATE);
    const r = await api.run(['submit', join(files, 'api@7.service')]);
    expect(r).toEqual({ code: 0, out: 'Unit api@7.service inactive\n', err: '' });
    expect(await job('api@.service')).toBeUndefined();
  });

  it('refuses to start a template (fleet: cannot activate template)', async () => {
    await api.run(['submit', file('web@.service', TEMPLATE)]);
    expect(await api.run(['start', 'web@.service'])).toEqual({
      code: 1,
      out: '',
      err: 'Error starting units: cannot activate template "web@.service"\n',
    });
  });
});

describe('start, load, stop, unload (blocking)', () => {
  it('start waits until launched and prints where; stop and unload wait too', async () => {
    cluster();
    const p = file(
      'hello.service',
      HELLO.replace('[Service]', '[X-Fleet]\nMachineMetadata=region=eu\n\n[Service]'),
    );
    expect(await api.run(['start', p])).toEqual({
      code: 0,
      out: `Unit hello.service inactive\nUnit hello.service launched on ${M1.slice(0, 8)}.../10.214.0.11\n`,
      err: '',
    });
    expect(await api.run(['start', 'hello.service'])).toEqual({ code: 0, out: '', err: '' });
    expect(await api.run(['stop', 'hello'])).toEqual({
      code: 0,
      out: `Unit hello.service loaded on ${M1.slice(0, 8)}.../10.214.0.11\n`,
      err: 'Successfully stopped units [hello.service].\n',
    });
    expect(await api.run(['load', 'hello.service'])).toEqual({ code: 0, out: '', err: '' });
    expect(await api.run(['unload', 'hello.service'])).toEqual({
      code: 0,
      out: 'Unit hello.service inactive\n',
      err: 'Successfully unloaded units [hello.service].\n',
    });
    expect(await api.run(['load', 'hello.service'])).toEqual({
      code: 0,
      out: `Unit hello.service loaded on ${M1.slice(0, 8)}.../10.214.0.11\n`,
      err: '',
    });
  });

  it('--no-block triggers and returns; global units are never waited for', async () => {
    const p = file('hello.service', HELLO);
    const g = file('everywhere.service', `${HELLO}\n[X-Fleet]\nGlobal=true\n`);
    expect(await api.run(['start', '--no-block', p, g])).toEqual({
      code: 0,
      out:
        'Unit hello.service inactive\nUnit everywhere.service \n' +
        'Triggered unit hello.service start\nTriggered global unit everywhere.service start\n',
      err: '',
    });
    expect(await job('hello.service')).toMatchObject({ desiredState: 'launched' });
  });

  it('an unschedulable unit fails after one attempt with the reason, not forever', async () => {
    cluster();
    const p = file('asia.service', `${HELLO}\n[X-Fleet]\nMachineMetadata=region=ap\n`);
    const r = await api.run(['start', '--block-attempts=30', p]);
    expect(r).toEqual({
      code: 1,
      out: 'Unit asia.service inactive\n',
      err:
        'Error waiting for units: unit asia.service not scheduled: no machine matches MachineMetadata region=ap\n' +
        'Error waiting for unit states, exit status: unit asia.service not scheduled: no machine matches MachineMetadata region=ap\n',
    });
  });

  it('times out after --block-attempts with fleetctl message when nothing happens', async () => {
    const p = file('hello.service', HELLO);
    const r = await api.run(['start', '--block-attempts=1', p]);
    expect(r).toEqual({
      code: 1,
      out: 'Unit hello.service inactive\n',
      err:
        'Error waiting for units: timed out waiting for unit hello.service to report state launched\n' +
        'Error waiting for unit states, exit status: timed out waiting for unit hello.service to report state launched\n',
    });
  });

  it('stop skips unknown units, refuses an inactive one, and reports a timeout', async () => {
    const p = file('hello.service', HELLO);
    await api.run(['submit', p]);
    expect(await api.run(['stop', 'hello.service', 'nope.service'])).toEqual({
      code: 1,
      out: '',
      err: 'Unable to stop unit hello.service in state inactive\n',
    });
    cluster();
    await api.run(['start', 'hello.service']);
    await stopSim!();
    stopSim = undefined;
    expect(await api.run(['stop', '--block-attempts=1', 'hello.service', 'nope.service'])).toEqual({
      code: 1,
      out: '',
      err:
        'Error waiting for units: timed out waiting for unit hello.service to report state loaded\n' +
        'Failed to stop units [hello.service]. err: timed out waiting for unit hello.service to report state loaded\n',
    });
  });
});

describe('restart', () => {
  it('stops, waits for the stop, starts, and waits again', async () => {
    const seen: string[] = [];
    cluster();
    await api.run(['start', file('hello.service', HELLO)]);
    const watch = api.registry.watch({ prefix: 'state/hello.service/' });
    const collecting = (async () => {
      for await (const batch of watch) {
        for (const ev of batch.events) {
          if (ev.type === 'put') seen.push((JSON.parse(ev.kv.value) as { jobState: string }).jobState);
        }
      }
    })();
    const r = await api.run(['restart', 'hello.service']);
    watch.close();
    await collecting;
    expect(r).toEqual({
      code: 0,
      out:
        `Unit hello.service loaded on ${M1.slice(0, 8)}.../10.214.0.11\n` +
        `Unit hello.service launched on ${M1.slice(0, 8)}.../10.214.0.11\n`,
      err: '',
    });
    expect(seen).toEqual(['loaded', 'launched']);
  });

  it('starts a loaded unit; refuses an inactive one with exit 0', async () => {
    cluster();
    await api.run(['load', file('hello.service', HELLO)]);
    await api.run(['submit', file('other.service', HELLO)]);
    const r = await api.run(['restart', 'hello.service', 'other.service']);
    expect(r).toEqual({
      code: 0,
      out: `Unit hello.service launched on ${M1.slice(0, 8)}.../10.214.0.11\n`,
      err: 'Unable to restart unit other.service in state inactive\n',
    });
  });
});

describe('destroy', () => {
  it('removes units and waits until no machine reports them', async () => {
    cluster();
    await api.run(['start', file('hello.service', HELLO), file('two.service', HELLO)]);
    expect((await api.registry.listUnitStates()).map((s) => s.name).sort()).toEqual([
      'hello.service',
      'two.service',
    ]);
    const r = await api.run(['destroy', 'hello.service', 'two', 'nope.service']);
    expect(r).toEqual({ code: 0, out: 'Destroyed hello.service\nDestroyed two.service\n', err: '' });
    expect(await api.registry.listUnitStates()).toEqual([]);
    expect(await api.registry.listJobs()).toEqual([]);
  });

  it('--no-block returns at once', async () => {
    await api.run(['submit', file('hello.service', HELLO)]);
    expect(await api.run(['destroy', '--no-block', 'hello.service'])).toEqual({
      code: 0,
      out: 'Destroyed hello.service\n',
      err: '',
    });
  });
});

describe('list pagination', () => {
  it('reads every page (fleet pages by 100)', async () => {
    const body = '[Service]\nExecStart=/bin/true\n';
    for (let i = 0; i < 250; i++)
      await api.registry.createUnit(`p${String(i).padStart(3, '0')}.service`, body);
    const r = await api.run(['list-unit-files', '--no-legend', '--fields=unit']);
    expect(r.code).toBe(0);
    const names = r.out.trim().split('\n');
    expect(names).toHaveLength(250);
    expect(names[0]).toBe('p000.service');
    expect(names[249]).toBe('p249.service');
  });
});
