import { describe, expect, it } from 'vitest';
import { isJobError } from '../../../src/systemd/manager.js';
import { FakeSystemdManager } from '../../../src/systemd/fake.js';
import { serviceBody, systemdContract } from '../../support/systemd-contract.js';

describe('FakeSystemdManager: the SystemdManager contract', () => {
  systemdContract(() => {
    const mgr = new FakeSystemdManager({ foreign: ['dbus.service'] });
    return Promise.resolve({
      mgr,
      foreign: 'dbus.service',
      fileExists: (n) => Promise.resolve(mgr.files.has(n)),
      close: () => mgr.close(),
    });
  });
});

describe('FakeSystemdManager: scripted failures', () => {
  it('fails the next job with a typed error carrying the unit result and journal', async () => {
    const f = new FakeSystemdManager();
    await f.install('a.service', serviceBody('a'));
    f.fail('a.service', 'start', 'failed', 'exec', [
      'a.service: Failed to execute /nope: No such file or directory',
    ]);
    const err: unknown = await f.start('a.service').catch((e: unknown) => e);
    expect(isJobError(err, 'failed')).toBe(true);
    expect(err).toMatchObject({
      code: 'E_SYSTEMD_JOB',
      details: { unit: 'a.service', result: 'failed', unitResult: 'exec', execMainStatus: 203 },
    });
    expect((await f.state('a.service')).activeState).toBe('failed');
    await expect(f.start('a.service')).resolves.toMatchObject({ result: 'done' });
    expect(f.calls.get('start')).toBe(2);
    await f.close();
    await expect(f.state('a.service')).rejects.toMatchObject({ code: 'E_CLOSED' });
  });
});
