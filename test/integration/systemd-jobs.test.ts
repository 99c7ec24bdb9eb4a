/**
 * Job outcomes on real systemd 252 (from the host, machine m1): every non-`done` JobRemoved result
 * becomes a typed SystemdJobError carrying the unit's Result and its last journal lines.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DbusSystemdManager } from '../../src/systemd/dbus-manager.js';
import { SystemdJobError, isJobError } from '../../src/systemd/manager.js';
import { describeSystemd, machines } from '../support/testbed.js';
import { nextEvent, uniq } from '../support/systemd-contract.js';
import { openManager, systemctl } from './systemd-support.js';

const m = machines[0] ?? 'm1';

describeSystemd(`systemd jobs and failures (${m}, from the host)`, () => {
  let mgr: DbusSystemdManager;
  const created: string[] = [];
  beforeAll(async () => {
    mgr = await openManager(m);
  });
  afterAll(async () => {
    await mgr.uninstallMany(created).catch(() => undefined);
    await mgr.close();
  });
  const unit = async (stem: string, body: string) => {
    const name = `${uniq(stem)}.service`;
    created.push(name);
    await mgr.install(name, body);
    return name;
  };
  const failure = async (p: Promise<unknown>): Promise<SystemdJobError> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(err instanceof SystemdJobError)) throw new Error(`expected a SystemdJobError, got ${String(err)}`);
    return err;
  };

  it('a missing binary fails the start job: status 203/EXEC, the reason in the journal', async () => {
    const name = await unit(
      'nobin',
      '[Service]\nType=exec\nExecStart=/nonexistent/flotilla-no-such-binary --flag\n',
    );
    const err = await failure(mgr.start(name));
    expect(err).toMatchObject({ code: 'E_SYSTEMD_JOB', unit: name, kind: 'start', result: 'failed' });
    // systemd 252 reports Result=exit-code with status 203 (EXIT_EXEC) for a missing binary
    expect(err.state).toMatchObject({
      activeState: 'failed',
      result: 'exit-code',
      execMainStatus: 203,
      execMainCode: 1,
    });
    expect(err.details).toMatchObject({ unitResult: 'exit-code', execMainStatus: 203 });
    expect(err.message).toContain('status 203/EXEC');
    // The exec child's own line ("…: No such file or directory") can reach journald after PID 1's
    // lines that the error captured; PID 1's exit status line names the failure either way.
    expect(err.journal.join('\n')).toMatch(
      /flotilla-no-such-binary.*No such file or directory|Failed at step EXEC|status=203\/EXEC/,
    );
    expect(() => JSON.stringify(err.details)).not.toThrow();
  });

  it('with Type=simple the start job is done and the failure arrives as an event', async () => {
    const name = await unit('nobin-simple', '[Service]\nExecStart=/nonexistent/flotilla-no-such-binary\n');
    const w = mgr.watch({ units: [name] });
    try {
      await expect(mgr.start(name)).resolves.toMatchObject({ result: 'done' });
      const ev = await nextEvent(w, (e) => e.type === 'changed' && e.state.activeState === 'failed');
      expect(ev).toMatchObject({ state: { result: 'exit-code', execMainStatus: 203 } });
    } finally {
      w.close();
    }
  });

  it('a unit that exits 1 fails with result "exit-code" and its own output in the journal', async () => {
    const name = await unit(
      'exit1',
      "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo flotilla-boom-marker; exit 1'\n",
    );
    const err = await failure(mgr.start(name));
    expect(isJobError(err, 'failed')).toBe(true);
    expect(err.state).toMatchObject({
      activeState: 'failed',
      result: 'exit-code',
      execMainStatus: 1,
      execMainCode: 1,
    });
    expect(err.journal.join('\n')).toContain('flotilla-boom-marker');
    // restart fails the same way; uninstall clears the failed state
    await expect(mgr.restart(name)).rejects.toSatisfy((e) => isJobError(e, 'failed'));
  });

  it('a stop that outlives JobTimeoutSec ends with result "timeout"', async () => {
    // KillSignal=SIGCONT is ignored by sleep, so the stop hangs until TimeoutStopSec sends SIGKILL.
    const name = await unit(
      'stoptimeout',
      '[Unit]\nJobTimeoutSec=1\n\n[Service]\nExecStart=/bin/sleep infinity\nKillSignal=SIGCONT\nTimeoutStopSec=4\n',
    );
    await mgr.start(name);
    const t0 = Date.now();
    const err = await failure(mgr.stop(name));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(err).toMatchObject({ kind: 'stop', result: 'timeout' });
    expect(err.state?.activeState).toBe('deactivating');
    // systemd goes on with the stop: SIGKILL after TimeoutStopSec, result "timeout"
    const w = mgr.watch({ units: [name] });
    try {
      const ev = await nextEvent(
        w,
        (e) =>
          e.type === 'changed' && (e.state.activeState === 'failed' || e.state.activeState === 'inactive'),
      );
      expect(ev).toMatchObject({ state: { result: 'timeout' } });
    } finally {
      w.close();
    }
  });

  it('a stop past TimeoutStopSec is done, with the unit result "timeout" (SIGKILL)', async () => {
    const name = await unit(
      'stopkill',
      '[Service]\nExecStart=/bin/sleep infinity\nKillSignal=SIGCONT\nTimeoutStopSec=1\n',
    );
    await mgr.start(name);
    await expect(mgr.stop(name)).resolves.toMatchObject({ result: 'done' });
    expect(await mgr.state(name)).toMatchObject({ activeState: 'failed', result: 'timeout' });
  });

  it('stopping a unit while it starts cancels the start job ("canceled")', async () => {
    const name = await unit('cancel', '[Service]\nType=oneshot\nExecStart=/bin/sleep 5\n');
    const starting = failure(mgr.start(name));
    await new Promise((r) => setTimeout(r, 300));
    await mgr.stop(name);
    const err = await starting;
    expect(err).toMatchObject({ result: 'canceled', kind: 'start' });
  });

  it('a failing requirement fails the job with result "dependency"', async () => {
    const dep = await unit('dep', '[Service]\nType=oneshot\nExecStart=/bin/false\n');
    const main = await unit(
      'needs',
      `[Unit]\nRequires=${dep}\nAfter=${dep}\n\n[Service]\nExecStart=/bin/sleep infinity\n`,
    );
    const err = await failure(mgr.start(main));
    expect(err).toMatchObject({ result: 'dependency', unit: main });
  });

  it('a daemon-reload during a job does not lose its JobRemoved', async () => {
    const name = await unit(
      'reload',
      '[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sleep 2\n',
    );
    const t0 = Date.now();
    const started = mgr.start(name);
    await new Promise((r) => setTimeout(r, 300));
    await mgr.reload(); // over D-Bus
    systemctl(m, 'daemon-reload'); // and by someone else
    await expect(started).resolves.toMatchObject({ result: 'done', inferred: false });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    expect((await mgr.state(name)).activeState).toBe('active');
  });

  it('a client-side deadline ends the wait with a typed timeout and leaves the job alone', async () => {
    const name = await unit('slow', '[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sleep 2\n');
    const err = await failure(mgr.start(name, { timeoutMs: 200 }));
    expect(err).toMatchObject({ result: 'timeout', details: { clientTimeout: true } });
    const w = mgr.watch({ units: [name] });
    try {
      await nextEvent(w, (e) => e.type === 'changed' && e.state.activeState === 'active');
    } finally {
      w.close();
    }
  });
});
