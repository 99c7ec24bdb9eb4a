/** The reboot lock suite (test/support/lock-contract.ts) against a real single-member etcd (v3 txns). */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { locksmithctlArgv } from '../../src/cli/commands/locksmith.js';
import { main } from '../../src/cli/main.js';
import { EtcdKvStore } from '../../src/registry/etcd.js';
import { etcdBinary, startSingleEtcd, type SingleEtcd } from '../support/etcd-single.js';
import { lockContract } from '../support/lock-contract.js';

const haveEtcd = etcdBinary() !== undefined;
if (!haveEtcd && process.env.TESTENV_REQUIRED === '1') {
  throw new Error('etcd is not installed: run test/env/up.sh (TESTENV_REQUIRED=1 forbids skipping)');
}
(haveEtcd ? describe : describe.skip)('etcd (skipped: etcd is not installed)', () => {
  let etcd: SingleEtcd | undefined;
  beforeAll(async () => {
    etcd = await startSingleEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });
  it('locksmithctl prints what locksmithctl printed', async () => {
    const env = {
      FLOTILLA_ETCD_SERVERS: etcd!.endpoint,
      FLOTILLA_ETCD_KEY_PREFIX: `/flotilla-test/${randomUUID()}/`,
      LOCKSMITHD_LOCK_TTL: '30s',
    };
    const ctl = async (...args: string[]) => {
      let out = '';
      let err = '';
      const io = { out: (s: string) => void (out += s), err: (s: string) => void (err += s) };
      const code = await main(['locksmith', ...locksmithctlArgv(args)], io, env);
      return { code, out, err };
    };
    expect(await ctl('status')).toEqual({ code: 0, out: 'Available: 1\nMax: 1\n', err: '' });
    expect(await ctl('lock', 'aaaa')).toEqual({ code: 0, out: '', err: '' });
    expect(await ctl('status')).toEqual({
      code: 0,
      out: 'Available: 0\nMax: 1\n\nMACHINE ID\naaaa\n',
      err: '',
    });
    expect(await ctl('lock', 'bbbb')).toEqual({
      code: 1,
      out: '',
      err: 'Error locking: semaphore is at 0\n',
    });
    expect(await ctl(`-endpoint=${etcd!.endpoint}`, 'set-max', '2')).toEqual({
      code: 0,
      out: 'Old-Max: 1\nMax: 2\n',
      err: '',
    });
    expect(await ctl('lock', 'bbbb')).toMatchObject({ code: 0 });
    expect((await ctl('status')).out).toBe('Available: 0\nMax: 2\n\nMACHINE ID\naaaa\nbbbb\n');
    expect(await ctl('unlock', 'cccc')).toEqual({
      code: 1,
      out: '',
      err: 'Error unlocking: holder does not exist\n',
    });
    expect(await ctl('set-max')).toEqual({ code: 1, out: '', err: 'New maximum value must be set.\n' });
    expect(await ctl('-group', 'web', 'status')).toEqual({ code: 0, out: 'Available: 1\nMax: 1\n', err: '' });
    expect((await ctl('frob')).code).toBe(2);
    expect(await ctl('unlock', 'aaaa')).toMatchObject({ code: 0 });
    expect((await ctl('status')).out).toBe('Available: 1\nMax: 2\n\nMACHINE ID\nbbbb\n');
  });

  lockContract('etcd, 1 member', () =>
    Promise.resolve(
      new EtcdKvStore({ endpoints: [etcd!.endpoint], prefix: `/flotilla-test/${randomUUID()}/` }),
    ),
  );
});
