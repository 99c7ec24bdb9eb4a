/**
 * The SystemdManager contract, run against the fake (test/unit/systemd/fake.test.ts) and against real
 * systemd (test/integration/systemd-manager.test.ts), so the fake cannot drift from the driver.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { isCode } from '../../src/lib/errors.js';
import type { SystemdManager, UnitEvent, UnitWatch } from '../../src/systemd/manager.js';

export interface ContractEnv {
  mgr: SystemdManager;
  /** A unit that exists on the machine and that flotilla did not install. */
  foreign: string;
  /** Whether a file of that name exists in the units directory. */
  fileExists(name: string): Promise<boolean>;
  close(): Promise<void>;
}

export const uniq = (stem: string) => `flotilla-t-${stem}-${randomBytes(3).toString('hex')}`;

export const serviceBody = (desc: string, install = false) =>
  `[Unit]\nDescription=${desc}\n\n[Service]\nExecStart=/bin/sleep infinity\n${install ? '\n[Install]\nWantedBy=multi-user.target\n' : ''}`;

export async function nextEvent(
  w: UnitWatch,
  pred: (e: UnitEvent) => boolean,
  timeoutMs = 10_000,
): Promise<UnitEvent> {
  const it = w[Symbol.asyncIterator]();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error('no matching event in time');
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      it.next(),
      new Promise<never>(
        (_, rej) => (timer = setTimeout(() => rej(new Error('no matching event in time')), left)),
      ),
    ]).finally(() => clearTimeout(timer));
    if (r.done) throw new Error('watch ended');
    if (pred(r.value)) return r.value;
  }
}

export function systemdContract(open: () => Promise<ContractEnv>): void {
  let env: ContractEnv;
  const created: string[] = [];
  beforeAll(async () => {
    env = await open();
  });
  afterAll(async () => {
    await env.mgr.uninstallMany(created).catch(() => undefined);
    await env.close();
  });
  const install = async (name: string, body: string) => {
    created.push(name);
    return env.mgr.install(name, body);
  };

  it('runs the full lifecycle: install, start, state, stop, uninstall', async () => {
    const name = `${uniq('life')}.service`;
    const r = await install(name, serviceBody('lifecycle'));
    expect(r).toMatchObject({ name, changed: true, enabled: false });
    expect(r.path.endsWith(`/${name}`)).toBe(true);
    expect(await env.mgr.isOwned(name)).toBe(true);
    expect(await env.fileExists(name)).toBe(true);
    const started = await env.mgr.start(name);
    expect(started).toMatchObject({ unit: name, kind: 'start', result: 'done', inferred: false });
    const s = await env.mgr.state(name);
    expect(s).toMatchObject({ name, loadState: 'loaded', activeState: 'active', subState: 'running' });
    expect(s.mainPID).toBeGreaterThan(0);
    expect(() => JSON.stringify(s)).not.toThrow();
    await env.mgr.restart(name);
    expect((await env.mgr.state(name)).activeState).toBe('active');
    await env.mgr.stop(name);
    expect(await env.mgr.state(name)).toMatchObject({ activeState: 'inactive', subState: 'dead' });
    await env.mgr.uninstall(name);
    expect(await env.fileExists(name)).toBe(false);
    expect(await env.mgr.isOwned(name)).toBe(false);
    expect((await env.mgr.state(name)).loadState).toBe('not-found');
  });

  it('re-installing the same contents reports no change; other contents do', async () => {
    const name = `${uniq('same')}.service`;
    await install(name, serviceBody('v1'));
    expect((await env.mgr.install(name, serviceBody('v1'))).changed).toBe(false);
    expect((await env.mgr.install(name, serviceBody('v2'))).changed).toBe(true);
    expect((await env.mgr.state(name)).description).toBe('v2');
  });

  it('enables a unit with an [Install] section (runtime) and only that one', async () => {
    const a = `${uniq('inst')}.service`;
    const b = `${uniq('noinst')}.service`;
    created.push(a, b);
    const [ra, rb] = await env.mgr.installMany([
      { name: a, contents: serviceBody('with install', true) },
      { name: b, contents: serviceBody('without install') },
    ]);
    expect(ra?.enabled).toBe(true);
    expect(rb?.enabled).toBe(false);
    const [sa, sb] = await env.mgr.states([a, b]);
    expect(sa?.unitFileState).toBe('enabled-runtime');
    expect(sb?.unitFileState).not.toBe('enabled-runtime');
    await env.mgr.uninstall(a);
    expect((await env.mgr.state(a)).loadState).toBe('not-found');
  });

  it('runs instances of an installed template, and owns them through it', async () => {
    const stem = uniq('tpl');
    const tpl = `${stem}@.service`;
    await install(tpl, '[Unit]\nDescription=instance %i\n\n[Service]\nExecStart=/bin/sleep infinity\n');
    const one = `${stem}@one.service`;
    const two = `${stem}@x:y-z.service`;
    expect(await env.mgr.isOwned(one)).toBe(true);
    await env.mgr.start(one);
    await env.mgr.start(two);
    const [s1, s2] = await env.mgr.states([one, two]);
    expect(s1).toMatchObject({ activeState: 'active', description: 'instance one' });
    expect(s2).toMatchObject({ activeState: 'active', description: 'instance x:y-z' });
    await env.mgr.stop(one);
    await env.mgr.stop(two);
    expect((await env.mgr.state(two)).activeState).toBe('inactive');
  });

  it('refuses invalid names before any file is written or any call is made', async () => {
    for (const bad of [
      '../evil.service',
      'a/b.service',
      'x.nope',
      '',
      'snow\u2603.service',
      'a b.service',
      '-$(id).service',
      'a\nb.service',
    ]) {
      await expect(env.mgr.install(bad, serviceBody('bad'))).rejects.toSatisfy((e) =>
        isCode(e, 'E_UNIT_NAME'),
      );
      await expect(env.mgr.start(bad)).rejects.toSatisfy((e) => isCode(e, 'E_UNIT_NAME'));
      await expect(env.mgr.state(bad)).rejects.toSatisfy((e) => isCode(e, 'E_UNIT_NAME'));
      if (bad && !bad.includes('/') && !bad.includes('\n')) expect(await env.fileExists(bad)).toBe(false);
    }
    await expect(
      env.mgr.installMany([
        { name: `${uniq('ok')}.service`, contents: serviceBody('ok') },
        { name: 'bad name.service', contents: '' },
      ]),
    ).rejects.toSatisfy((e) => isCode(e, 'E_UNIT_NAME'));
  });

  it('does not touch units it did not install', async () => {
    for (const op of [
      () => env.mgr.stop(env.foreign),
      () => env.mgr.restart(env.foreign),
      () => env.mgr.start(env.foreign),
    ]) {
      await expect(op()).rejects.toSatisfy((e) => isCode(e, 'E_SYSTEMD_NOT_OWNED'));
    }
    await expect(env.mgr.install(env.foreign, serviceBody('hijack'))).rejects.toSatisfy((e) =>
      isCode(e, 'E_SYSTEMD_NOT_OWNED'),
    );
    await expect(env.mgr.setResources(env.foreign, { cpuWeight: 1 })).rejects.toSatisfy((e) =>
      isCode(e, 'E_SYSTEMD_NOT_OWNED'),
    );
    expect(await env.fileExists(env.foreign)).toBe(false);
    await env.mgr.uninstall(env.foreign); // not ours: a no-op
    expect((await env.mgr.state(env.foreign)).activeState).toBe('active');
  });

  it('lists many units in one call and reads many states at once', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `${uniq(`many${i}`)}.service`);
    created.push(...names);
    await env.mgr.installMany(names.map((n) => ({ name: n, contents: serviceBody(n) })));
    const listed = await env.mgr.list(names);
    expect(listed.map((u) => u.name)).toEqual(names);
    expect(listed.every((u) => u.loadState === 'loaded' && u.activeState === 'inactive')).toBe(true);
    const states = await env.mgr.states(names);
    expect(states.map((s) => s.description)).toEqual(names);
    expect(() => JSON.stringify({ listed, states })).not.toThrow();
  });

  it('pushes change events for watched units', async () => {
    const name = `${uniq('watch')}.service`;
    await install(name, serviceBody('watched'));
    const w = env.mgr.watch({ units: [name] });
    try {
      await env.mgr.start(name);
      const ev = await nextEvent(w, (e) => e.type === 'changed' && e.state.activeState === 'active');
      expect(ev).toMatchObject({ unit: name, state: { subState: 'running' } });
      await env.mgr.stop(name);
      await nextEvent(w, (e) => e.type === 'changed' && e.state.activeState === 'inactive');
    } finally {
      w.close();
    }
  });

  it('starts a transient unit with cgroup properties, owned through its prefix', async () => {
    const name = `flotilla-${uniq('tr').slice('flotilla-'.length)}.service`;
    await env.mgr.startTransient({
      name,
      command: ['/bin/sleep', 'infinity'],
      cpuWeight: 50,
      ioWeight: 20,
      ioWriteBandwidthMax: [{ device: '/dev/null', bytesPerSecond: 1_048_576 }],
      memoryMax: 128 * 1024 * 1024,
      nice: 5,
    });
    const s = await env.mgr.state(name);
    expect(s).toMatchObject({ activeState: 'active', transient: true });
    expect(await env.mgr.isOwned(name)).toBe(true);
    await env.mgr.setResources(name, {
      ioWriteBandwidthMax: [{ device: '/dev/null', bytesPerSecond: 2_097_152 }],
    });
    await env.mgr.stop(name);
    await expect(
      env.mgr.startTransient({ name: 'not-ours.service', command: ['/bin/true'] }),
    ).rejects.toSatisfy((e) => isCode(e, 'E_SYSTEMD_NOT_OWNED'));
  });
}
