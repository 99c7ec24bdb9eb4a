/**
 * bus.ts against a real, private dbus-daemon on the host (no systemd needed): reconnect after the
 * daemon goes away, match rules restored, in-flight calls failed, queueing under the daemon's
 * pending-reply limit. Each test starts and reaps its own daemon.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dbus from 'dbus-next';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DbusConnection, type BusSignal } from '../../src/systemd/bus.js';
import { DbusSystemdManager } from '../../src/systemd/dbus-manager.js';

const haveDaemon = existsSync('/usr/bin/dbus-daemon');
if (!haveDaemon && process.env.TESTENV_REQUIRED === '1')
  throw new Error('dbus-daemon is required (apt-get install dbus)');

const dir = mkdtempSync(join(tmpdir(), 'flotilla-bus-'));
const address = `unix:path=${join(dir, 'bus')}`;
let daemon: ChildProcess | undefined;

async function startDaemon(): Promise<void> {
  rmSync(join(dir, 'bus'), { force: true });
  const d = spawn(
    'dbus-daemon',
    ['--session', '--nofork', '--nopidfile', `--address=${address}`, '--print-address'],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  daemon = d;
  await new Promise<void>((resolve, reject) => {
    d.stdout.once('data', () => resolve());
    d.once('exit', (code) => reject(new Error(`dbus-daemon exited ${code}`)));
  });
}

async function stopDaemon(): Promise<void> {
  const d = daemon;
  daemon = undefined;
  if (!d || d.exitCode !== null) return;
  const gone = new Promise((r) => d.once('exit', r));
  d.kill('SIGKILL');
  await gone;
}

const listNames = {
  destination: 'org.freedesktop.DBus',
  path: '/org/freedesktop/DBus',
  interface: 'org.freedesktop.DBus',
  member: 'ListNames',
};

function waitFor<T>(fn: (done: (v: T) => void) => void, ms = 5000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timed out')), ms);
    fn((v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

describe.runIf(haveDaemon)('DbusConnection on a private dbus-daemon', () => {
  let conn: DbusConnection | undefined;
  afterEach(async () => {
    conn?.close();
    conn = undefined;
    await stopDaemon();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('connects, calls, and counts calls', async () => {
    await startDaemon();
    conn = new DbusConnection({ address });
    conn.start();
    await conn.ready(5000);
    const [names] = await conn.call(listNames);
    expect(names).toContain('org.freedesktop.DBus');
    expect(conn.stats.calls).toBe(1);
  });

  it('reconnects after the daemon restarts: setup hooks rerun, match rules restored', async () => {
    await startDaemon();
    const setups: boolean[] = [];
    const states: boolean[] = [];
    conn = new DbusConnection({ address, reconnectMinMs: 20, reconnectMaxMs: 100 });
    conn.onSetup((ctx) => {
      setups.push(ctx.reconnect);
      return Promise.resolve();
    });
    conn.onState((up) => states.push(up));
    const signals: BusSignal[] = [];
    conn.onSignal((s) => signals.push(s));
    conn.start();
    await conn.addMatch("type='signal',interface='org.flotilla.Test'");
    await conn.ready(5000);

    const down = waitFor<void>((done) => conn!.onState((up) => !up && done()));
    await stopDaemon();
    await down;
    await expect(conn.call({ ...listNames, timeoutMs: 100 })).rejects.toMatchObject({
      code: 'E_SYSTEMD_UNAVAILABLE',
    });

    await startDaemon();
    await conn.ready(5000);
    expect(setups).toEqual([false, true]);
    expect(states).toEqual([true, false, true]);
    expect(conn.stats.connects).toBe(2);

    // the match rule was re-added on the new connection: a signal from another client reaches us
    const peer = dbus.sessionBus({ busAddress: address });
    try {
      await new Promise((r) => peer.once('connect', r));
      peer.send(dbus.Message.newSignal('/org/flotilla/test', 'org.flotilla.Test', 'Ping', 's', ['hello']));
      await waitFor<void>((done) => {
        const t = setInterval(() => {
          if (signals.some((s) => s.member === 'Ping' && s.body[0] === 'hello')) {
            clearInterval(t);
            done();
          }
        }, 10);
      });
    } finally {
      peer.disconnect();
    }
  });

  it('fails calls in flight when the connection drops', async () => {
    await startDaemon();
    conn = new DbusConnection({ address, reconnectMinMs: 1000 });
    conn.start();
    await conn.ready(5000);
    // A peer that never replies: call a method on a client connection that ignores it.
    const mute = dbus.sessionBus({ busAddress: address });
    await new Promise((r) => mute.once('connect', r));
    const muteName = (mute as unknown as { name: string }).name;
    mute.addMethodHandler(() => true); // swallow every call
    const pending = conn
      .call({
        destination: muteName,
        path: '/x',
        interface: 'org.flotilla.Mute',
        member: 'Hang',
        timeoutMs: 10_000,
      })
      .then(
        () => new Error('resolved'),
        (e: unknown) => e,
      );
    await new Promise((r) => setTimeout(r, 50));
    await stopDaemon();
    mute.disconnect();
    expect(await pending).toMatchObject({ code: 'E_SYSTEMD_UNAVAILABLE' });
    expect(String(await pending)).toMatch(/connection lost/);
  });

  it('sends an idempotent call again on the next connection when the connection drops under it', async () => {
    await startDaemon();
    conn = new DbusConnection({ address, reconnectMinMs: 20 });
    conn.start();
    await conn.ready(5000);
    const mute = dbus.sessionBus({ busAddress: address });
    await new Promise((r) => mute.once('connect', r));
    const muteName = (mute as unknown as { name: string }).name;
    mute.addMethodHandler(() => true);
    const call = {
      destination: muteName,
      path: '/x',
      interface: 'org.flotilla.Mute',
      member: 'Hang',
      timeoutMs: 10_000,
    };
    const retried = conn.call({ ...call, idempotent: true }).then(
      () => new Error('resolved'),
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 50));
    await stopDaemon();
    mute.disconnect();
    await startDaemon();
    // sent again on the new bus, where the old peer no longer exists: a D-Bus error, not "lost"
    expect(await retried).toMatchObject({
      code: 'E_SYSTEMD_CALL',
      details: { name: 'org.freedesktop.DBus.Error.ServiceUnknown' },
    });
  });

  it('queues calls beyond maxInFlight instead of hitting LimitsExceeded', async () => {
    await startDaemon();
    conn = new DbusConnection({ address, maxInFlight: 3 });
    conn.start();
    await conn.ready(5000);
    const results = await Promise.all(Array.from({ length: 300 }, () => conn!.call(listNames)));
    expect(results).toHaveLength(300);
    expect(conn.stats.calls).toBe(300);
  });

  it('ready() and connect() fail with E_SYSTEMD_UNAVAILABLE when nothing listens', async () => {
    conn = new DbusConnection({ address: `unix:path=${join(dir, 'nobody')}`, reconnectMinMs: 20 });
    conn.start();
    await expect(conn.ready(200)).rejects.toMatchObject({ code: 'E_SYSTEMD_UNAVAILABLE' });
    await expect(
      DbusSystemdManager.connect({ address: `unix:path=${join(dir, 'nobody')}`, connectTimeoutMs: 200 }),
    ).rejects.toMatchObject({
      code: 'E_SYSTEMD_UNAVAILABLE',
    });
  });
});
