/**
 * Unit names on real systemd 252 (from the host, machine m1): escaped unicode and odd-but-valid names
 * go through the whole lifecycle, including event routing by object path; invalid names are refused
 * before any file exists. And scale: 200 units listed in one D-Bus call.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { isCode } from '../../src/lib/errors.js';
import type { DbusSystemdManager } from '../../src/systemd/dbus-manager.js';
import { describeSystemd, machineExec, machines } from '../support/testbed.js';
import { nextEvent, serviceBody, uniq } from '../support/systemd-contract.js';
import { UNITS_DIR, machineRoot, openManager } from './systemd-support.js';

const m = machines[0] ?? 'm1';

describeSystemd(`unit names and scale on real systemd (${m}, from the host)`, () => {
  let mgr: DbusSystemdManager;
  const created: string[] = [];
  beforeAll(async () => {
    mgr = await openManager(m);
  });
  afterAll(async () => {
    await mgr.uninstallMany(created).catch(() => undefined);
    await mgr.close();
  });

  const snowman = machineExec(m, 'systemd-escape', '\u2603').trim(); // \xe2\x98\x83
  const odd = (): string[] => {
    const s = uniq('odd').slice('flotilla-t-'.length);
    return [
      `flotilla-t-${snowman}-${s}.service`,
      `flotilla-t-a:b-${s}.service`,
      `flotilla-t-x\\x2dy-${s}.service`,
      `flotilla-t-dots.in.name-${s}.service`,
      `flotilla-t-_under_-${s}.service`,
      `flotilla-t--${s}-.service`,
    ];
  };

  it('escaped unicode and odd-but-valid names: install, start, watch, list, stop, uninstall', async () => {
    expect(snowman).toBe('\\xe2\\x98\\x83');
    const names = odd();
    created.push(...names);
    await mgr.installMany(names.map((n) => ({ name: n, contents: serviceBody(`odd ${n}`) })));
    const w = mgr.watch({ units: names });
    try {
      for (const n of names) {
        await mgr.start(n);
        const ev = await nextEvent(
          w,
          (e) => e.unit === n && e.type === 'changed' && e.state.activeState === 'active',
        );
        expect(ev.type === 'changed' && ev.state.description).toBe(`odd ${n}`);
      }
      const listed = await mgr.list(names);
      expect(listed.map((u) => [u.name, u.activeState])).toEqual(names.map((n) => [n, 'active']));
      // systemd reports the same names (what systemctl shows)
      const shown = machineExec(m, 'systemctl', 'show', '--property=Id', '--value', ...names)
        .split('\n')
        .filter(Boolean);
      expect(shown).toEqual(names);
      for (const n of names) await mgr.stop(n);
    } finally {
      w.close();
    }
    await mgr.uninstallMany(names);
    expect((await mgr.states(names)).map((s) => s.loadState)).toEqual(names.map(() => 'not-found'));
  });

  it('instances with escaped and odd instance strings run from one template', async () => {
    const stem = uniq('inst');
    const tpl = `${stem}@.service`;
    created.push(tpl);
    await mgr.install(tpl, '[Unit]\nDescription=instance %i\n\n[Service]\nExecStart=/bin/sleep infinity\n');
    const path = machineExec(m, 'systemd-escape', '--path', '/dev/sda').trim(); // dev-sda
    const instances = [
      `${stem}@${path}.service`,
      `${stem}@${snowman}.service`,
      `${stem}@a@b.service`,
      `${stem}@1.2.3.service`,
    ];
    for (const i of instances) await mgr.start(i);
    const states = await mgr.states(instances);
    expect(states.map((s) => s.activeState)).toEqual(instances.map(() => 'active'));
    expect(states[1]?.description).toBe(`instance ${snowman}`);
    for (const i of instances) await mgr.stop(i);
  });

  it('reads the state of a unit whose ExecStart is not valid UTF-8 (GetAll("") fails for it)', async () => {
    const name = `${uniq('badutf8')}.service`;
    created.push(name);
    await mgr.install(name, "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/echo '\\377'\n");
    await mgr.start(name);
    expect(await mgr.state(name)).toMatchObject({
      activeState: 'active',
      result: 'success',
      execMainStatus: 0,
      execMainCode: 1,
    });
    const w = mgr.watch({ units: [name] });
    try {
      expect(await nextEvent(w, () => true)).toMatchObject({
        type: 'changed',
        state: { activeState: 'active' },
      });
    } finally {
      w.close();
    }
  });

  it('refuses invalid names before any file is written', async () => {
    const before = readdirSync(join(machineRoot(m), UNITS_DIR));
    const bad = [
      'flotilla-\u2603.service',
      'flotilla-t-a b.service',
      '../flotilla.service',
      'flotilla-t-x.service/..',
      'flotilla-t-x.exe',
      '@x.service',
      'flotilla-t-a\0b.service',
      `${'a'.repeat(260)}.service`,
      'flotilla-t-a@b.mount',
    ];
    for (const n of bad) {
      await expect(mgr.install(n, serviceBody('bad'))).rejects.toSatisfy((e) => isCode(e, 'E_UNIT_NAME'));
      await expect(
        mgr.installMany([
          { name: `${uniq('fine')}.service`, contents: serviceBody('fine') },
          { name: n, contents: '' },
        ]),
      ).rejects.toSatisfy((e) => isCode(e, 'E_UNIT_NAME'));
      await expect(mgr.startTransient({ name: n, command: ['/bin/true'] })).rejects.toSatisfy((e) =>
        isCode(e, 'E_UNIT_NAME'),
      );
      await expect(mgr.list([n])).rejects.toSatisfy((e) => isCode(e, 'E_UNIT_NAME'));
    }
    expect(readdirSync(join(machineRoot(m), UNITS_DIR))).toEqual(before);
  });

  it('lists 200 units in one D-Bus call, and reads their full states', async () => {
    const names = Array.from({ length: 200 }, (_, i) => `${uniq(`n${i}`)}.service`);
    created.push(...names);
    await mgr.installMany(names.map((n) => ({ name: n, contents: serviceBody(n) })));
    const calls = mgr.stats.calls;
    const listed = await mgr.list(names);
    expect(mgr.stats.calls - calls).toBe(1);
    expect(listed).toHaveLength(200);
    expect(listed.map((u) => u.name)).toEqual(names);
    expect(new Set(listed.map((u) => `${u.loadState}/${u.activeState}/${u.subState}`))).toEqual(
      new Set(['loaded/inactive/dead']),
    );
    const states = await mgr.states(names);
    expect(states.map((s) => s.description)).toEqual(names);
    expect(JSON.parse(JSON.stringify(states))).toHaveLength(200);
    const all = await mgr.list(); // ListUnits: one call, every loaded unit
    expect(all.length).toBeGreaterThan(10);
    await mgr.uninstallMany(names);
  });
});
