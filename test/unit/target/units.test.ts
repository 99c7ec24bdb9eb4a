/**
 * Units in a temporary root: contents, drop-ins, runtime, mask/unmask, networkd units, and enable
 * links compared with what the real `systemctl --root=DIR enable` makes from the same unit files.
 * The live part (daemon-reload, networkd restart, commands in plan order) is checked through the
 * TargetSystemd port with a recorder; the real D-Bus run is test/integration/target-live.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyPlan, startWithBoot } from '../../../src/target/apply.js';
import { applyUnit } from '../../../src/target/units.js';
import type { TargetSystemd } from '../../../src/target/live.js';
import type { PlannedAction, UnitAction } from '../../../src/target/types.js';
import { recorder } from '../datasource/log-recorder.js';
import { makeRoot, targetError, why, type TestRoot } from './root.js';

const noSystemctl = spawnSync('systemctl', ['--version'], { stdio: 'ignore' }).status !== 0;

const HELLO = `[Unit]
Description=Hello %n

[Service]
ExecStart=/bin/true

[Install]
WantedBy=multi-user.target
WantedBy=default.target
RequiredBy=foo.target
Alias=hi.service
`;
const TEMPLATE = `[Service]
ExecStart=/bin/echo %i

[Install]
WantedBy=multi-user.target
DefaultInstance=one
`;
const WITH_ALSO = `[Service]
ExecStart=/bin/true

[Install]
WantedBy=multi-user.target
Also=helper.socket
`;
const SOCKET = `[Socket]
ListenStream=/run/helper.sock

[Install]
WantedBy=sockets.target
`;

let a: TestRoot;
let b: TestRoot;
beforeEach(() => {
  a = makeRoot();
  b = makeRoot();
});
afterEach(() => {
  a.cleanup();
  b.cleanup();
});

const unit = (u: Omit<UnitAction, 'kind'>, reason = `coreos.units ${u.name}`): PlannedAction => ({
  reason,
  action: { kind: 'unit', ...u },
});

/** Every symlink under the root's systemd dirs, as "path -> target", sorted. */
function links(t: TestRoot): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    let names: string[];
    try {
      names = readdirSync(t.at(rel));
    } catch {
      return;
    }
    for (const n of names) {
      const p = `${rel}/${n}`;
      const st = lstatSync(t.at(p));
      if (st.isSymbolicLink()) out.push(`/${p} -> ${readlinkSync(t.at(p))}`);
      else if (st.isDirectory()) walk(p);
    }
  };
  walk('etc/systemd');
  walk('run/systemd');
  return out.sort();
}

describe.skipIf(why)('unit files', () => {
  it('writes contents and drop-ins 0644 under /etc/systemd/system, runtime ones under /run', async () => {
    const res = await applyPlan(
      [
        unit({
          name: 'hello.service',
          contents: HELLO,
          dropIns: [{ name: '10-env.conf', contents: '[Service]\nEnvironment=A=1\n' }],
        }),
        unit({ name: 'rt.service', contents: HELLO, runtime: true }),
        unit({
          name: 'docker.service',
          dropIns: [{ name: '50-opts.conf', contents: '[Service]\nEnvironment=X=1\n' }],
        }),
      ],
      { root: a.dir, live: false },
    );
    expect(res.changed).toHaveLength(3);
    expect(a.read('etc/systemd/system/hello.service')).toBe(HELLO);
    expect(a.read('etc/systemd/system/hello.service.d/10-env.conf')).toBe('[Service]\nEnvironment=A=1\n');
    expect(a.read('run/systemd/system/rt.service')).toBe(HELLO);
    expect(a.read('etc/systemd/system/docker.service.d/50-opts.conf')).toContain('X=1');
    expect(a.exists('etc/systemd/system/docker.service')).toBe(false);
    expect(lstatSync(a.at('etc/systemd/system/hello.service')).mode & 0o7777).toBe(0o644);
  });

  it('mask is a symlink to /dev/null (replacing a file); a runtime unit not masked is unmasked', async () => {
    mkdirSync(a.at('etc/systemd/system'), { recursive: true });
    writeFileSync(a.at('etc/systemd/system/old.service'), HELLO);
    await applyPlan(
      [
        unit({ name: 'old.service', mask: true }),
        unit({ name: 'locksmithd.service', mask: true, runtime: true, command: 'stop' }),
      ],
      { root: a.dir, live: false },
    );
    expect(readlinkSync(a.at('etc/systemd/system/old.service'))).toBe('/dev/null');
    expect(readlinkSync(a.at('run/systemd/system/locksmithd.service'))).toBe('/dev/null');
    const again = await applyPlan([unit({ name: 'old.service', mask: true })], { root: a.dir, live: false });
    expect(again.changed).toEqual([]);
    const un = await applyPlan([unit({ name: 'locksmithd.service', runtime: true, command: 'restart' })], {
      root: a.dir,
      live: false,
    });
    expect(un.changed).toHaveLength(1);
    expect(a.exists('run/systemd/system/locksmithd.service')).toBe(false);
  });

  it('new contents replace a mask symlink', async () => {
    await applyPlan([unit({ name: 'x.service', mask: true })], { root: a.dir, live: false });
    await applyPlan([unit({ name: 'x.service', contents: HELLO })], { root: a.dir, live: false });
    expect(lstatSync(a.at('etc/systemd/system/x.service')).isFile()).toBe(true);
  });

  it('enabling a masked unit is refused; new contents in the same plan unmask it first', async () => {
    await applyPlan([unit({ name: 'x.service', mask: true })], { root: a.dir, live: false });
    const err = await targetError(
      applyPlan([unit({ name: 'x.service', enable: true })], { root: a.dir, live: false }),
    );
    expect(err.message).toMatch(
      /: enable: x\.service is masked \(\/etc\/systemd\/system\/x\.service is a symlink to \/dev\/null\)/,
    );
    await applyPlan(
      [unit({ name: 'x.service', contents: HELLO }), unit({ name: 'x.service', enable: true })],
      {
        root: a.dir,
        live: false,
      },
    );
    expect(readlinkSync(a.at('etc/systemd/system/multi-user.target.wants/x.service'))).toBe(
      '/etc/systemd/system/x.service',
    );
  });

  it('networkd units go to /etc/systemd/network (runtime: /run/systemd/network)', async () => {
    const net = '[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n';
    await applyPlan(
      [
        unit({ name: '10-eth0.network', contents: net }),
        unit({ name: '20-br.netdev', contents: '[NetDev]\nName=br0\nKind=bridge\n', runtime: true }),
      ],
      { root: a.dir, live: false },
    );
    expect(a.read('etc/systemd/network/10-eth0.network')).toBe(net);
    expect(a.exists('run/systemd/network/20-br.netdev')).toBe(true);
  });

  it('second apply of units changes nothing and rewrites nothing', async () => {
    const plan = [
      unit({
        name: 'hello.service',
        contents: HELLO,
        enable: true,
        dropIns: [{ name: 'a.conf', contents: '[Unit]\nAfter=x\n' }],
      }),
      unit({ name: 'tpl@.service', contents: TEMPLATE, enable: true }),
      unit({ name: 'm.service', mask: true }),
      unit({ name: 'r.service', contents: HELLO, runtime: true, enable: true }),
    ];
    await applyPlan(plan, { root: a.dir, live: false });
    const snap = a.snapshot();
    const res = await applyPlan(plan, { root: a.dir, live: false });
    expect(res.changed).toEqual([]);
    expect(a.snapshot()).toBe(snap);
  });

  it('refuses invalid unit names, bodies, drop-ins, commands and combinations, writing nothing', async () => {
    const before = a.snapshot();
    const bad: [Omit<UnitAction, 'kind'>, RegExp][] = [
      [{ name: '../../etc/passwd.service' }, /: name: unit name must not contain "\/"/],
      [{ name: 'foo' }, /: name: unit name must contain "."/],
      [{ name: 'foo.bogus' }, /: name: invalid unit type/],
      [{ name: 'x.service', contents: 'no section line\n' }, /: content: line 1/],
      [
        { name: 'x.service', dropIns: [{ name: '../x.conf', contents: '' }] },
        /: drop_ins\[0\]\.name: invalid drop-in name/,
      ],
      [{ name: 'x.service', dropIns: [{ name: 'x.txt', contents: '' }] }, /drop_ins\[0\]\.name/],
      [{ name: 'x.service', command: 'rm -rf' }, /: command: unknown command/],
      [
        { name: 'x.service', contents: HELLO, mask: true, enable: true },
        /: enable: .* cannot be masked and enabled/,
      ],
      [{ name: 'nofile.service', enable: true }, /: enable: no unit file for nofile.service/],
      [
        { name: 'x.service', contents: '[Install]\nWantedBy=bad/target\n', enable: true },
        /: enable: .*WantedBy=bad\/target/,
      ],
    ];
    for (const [u, msg] of bad) {
      const err = await targetError(
        applyPlan(
          [
            {
              reason: 'write_files[0]',
              action: { kind: 'file', path: '/etc/first', contents: Buffer.from('x'), mode: 0o644 },
            },
            unit(u, 'coreos.units[1]'),
          ],
          {
            root: a.dir,
            live: false,
          },
        ),
      );
      expect(err.message).toMatch(/^coreos\.units\[1\]: /);
      expect(err.message).toMatch(msg);
    }
    expect(a.snapshot()).toBe(before);
  });

  it('refuses a unit directory that is a symlink out of the root', async () => {
    mkdirSync(a.at('etc/systemd'), { recursive: true });
    symlinkSync('/etc/systemd/system', a.at('etc/systemd/system'));
    const err = await targetError(
      applyPlan([unit({ name: 'x.service', contents: HELLO })], { root: a.dir, live: false }),
    );
    expect(err.message).toMatch(/outside the root/);
  });
});

describe.skipIf(why || noSystemctl)('enable = what systemctl --root enable makes', () => {
  const enableBoth = async (
    actions: Omit<UnitAction, 'kind'>[],
    systemctlArgs: string[][],
    seed?: (t: TestRoot) => void,
  ): Promise<void> => {
    seed?.(a);
    seed?.(b);
    await applyPlan(
      actions.map((u) => unit(u)),
      { root: a.dir, live: false },
    );
    // The same unit files in b, without enable, then the real systemctl.
    await applyPlan(
      actions.filter((u) => u.contents !== undefined).map((u) => unit({ ...u, enable: false })),
      { root: b.dir, live: false },
    );
    for (const args of systemctlArgs) {
      const res = spawnSync('systemctl', [`--root=${b.dir}`, 'enable', ...args], { encoding: 'utf8' });
      expect(res.status, res.stderr).toBe(0);
    }
    expect(links(a).length).toBeGreaterThan(0);
    expect(links(a)).toEqual(links(b));
  };

  it('WantedBy (twice), RequiredBy and Alias', async () => {
    await enableBoth([{ name: 'hello.service', contents: HELLO, enable: true }], [['hello.service']]);
  });

  it('a template with DefaultInstance, and an instance of it', async () => {
    await enableBoth(
      [
        { name: 'tpl@.service', contents: TEMPLATE, enable: true },
        { name: 'tpl@two.service', enable: true },
      ],
      [['tpl@.service', 'tpl@two.service']],
    );
  });

  it('Also= enables the other unit too', async () => {
    await enableBoth(
      [
        { name: 'helper.socket', contents: SOCKET },
        { name: 'main.service', contents: WITH_ALSO, enable: true },
      ],
      [['main.service']],
    );
  });

  it('runtime units are enabled under /run (systemctl enable --runtime)', async () => {
    await enableBoth(
      [{ name: 'rt.service', contents: HELLO, runtime: true, enable: true }],
      [['--runtime', 'rt.service']],
    );
    expect(links(a).every((l) => l.startsWith('/run/'))).toBe(true);
  });

  it('a vendor unit in /usr/lib/systemd/system, enabled without contents', async () => {
    const seed = (t: TestRoot): void => {
      mkdirSync(t.at('usr/lib/systemd/system'), { recursive: true });
      writeFileSync(
        join(t.at('usr/lib/systemd/system'), 'vendor.service'),
        HELLO.replace('Alias=hi.service\n', ''),
      );
    };
    await enableBoth([{ name: 'vendor.service', enable: true }], [['vendor.service']], seed);
    expect(links(a)).toContain(
      '/etc/systemd/system/multi-user.target.wants/vendor.service -> /usr/lib/systemd/system/vendor.service',
    );
  });
});

describe.skipIf(why)('live: daemon-reload, networkd, commands', () => {
  function recordingSystemd(fail?: string): TargetSystemd & { calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      daemonReload: () => {
        calls.push('daemon-reload');
        return Promise.resolve();
      },
      unitCommand: (name, command) => {
        calls.push(`${command} ${name}`);
        return name === fail
          ? Promise.reject(new Error(`job for ${name} failed`))
          : Promise.resolve('done' as const);
      },
      inThisBoot: (t) => {
        calls.push(`in-this-boot? ${t}`);
        return Promise.resolve(booting.has(t));
      },
      close: () => Promise.resolve(),
    };
  }
  const booting = new Set(['multi-user.target']);

  it('an Ignition-enabled unit starts with this boot when a target it is enabled into is being reached', async () => {
    const sd = recordingSystemd();
    const log = recorder();
    const plan = [
      unit({ name: 'a.service', contents: HELLO, enable: true, bootStart: true }),
      unit({
        name: 'r.service',
        contents: HELLO.replace(/^(WantedBy|RequiredBy)=.*\n/gm, '').replace(
          '[Install]\n',
          '[Install]\nWantedBy=rescue.target\n',
        ),
        enable: true,
        bootStart: true,
      }),
      unit({ name: 'c.service', contents: HELLO, enable: true }),
    ];
    const starts = plan.flatMap((p) => {
      const act = p.action as UnitAction;
      const out = applyUnit(a.dir, act, p.reason);
      return act.bootStart ? [{ name: act.name, enabledInto: out.enabledInto, reason: p.reason }] : [];
    });
    expect(starts.map((s) => s.enabledInto)).toEqual([
      ['multi-user.target', 'default.target', 'foo.target'],
      ['rescue.target'],
    ]);
    await startWithBoot(sd, starts, log);
    // a.service: multi-user.target is in this boot; r.service only waits for rescue.target; c.service
    // (cloud-config enable, no bootStart) is never started by enabling it.
    expect(sd.calls).toEqual([
      'in-this-boot? multi-user.target',
      'start a.service',
      'in-this-boot? rescue.target',
    ]);
    expect(log.text()).toMatch(/enabled unit started with this boot/);
    expect(log.text()).toMatch(/starts when its target is reached/);
  });

  it('a live apply needs the root /', async () => {
    const err = await targetError(applyPlan([], { root: a.dir, live: true, systemd: recordingSystemd() }));
    expect(err.message).toMatch(/a live apply needs the root "\/"/);
  });

  it('without live, commands are not run (and no systemd is needed)', async () => {
    const log = recorder();
    await applyPlan([unit({ name: 'x.service', contents: HELLO, command: 'start' })], {
      root: a.dir,
      live: false,
      log,
    });
    expect(log.text()).toMatch(/unit command skipped/);
  });
});
