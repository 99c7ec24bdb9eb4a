/**
 * The etcd backend against a real etcd with authentication enabled: etcd_username/etcd_password
 * and the URL form `http://user:pass@host` both work; no or wrong credentials fail with a clear
 * error that never contains the password.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKvStore } from '../../src/registry/etcd.js';
import { etcdBinary, startSingleEtcd, type SingleEtcd } from '../support/etcd-single.js';

const haveEtcd = etcdBinary() !== undefined;
if (!haveEtcd && process.env.TESTENV_REQUIRED === '1')
  throw new Error('etcd is not installed: run test/env/up.sh');

const PASSWORD = 'Pa55-w0rd-e7c3';

(haveEtcd ? describe : describe.skip)('etcd backend with etcd auth enabled', () => {
  let etcd: SingleEtcd;
  beforeAll(async () => {
    etcd = await startSingleEtcd();
    const admin = new Etcd3({ hosts: etcd.endpoint.replace(/^http:\/\//, '') });
    try {
      await admin.role('root').create();
      await admin.user('root').create(PASSWORD);
      await admin.user('root').addRole('root');
      await admin.auth.authEnable();
    } finally {
      admin.close();
    }
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  async function roundTrip(store: EtcdKvStore, value: string): Promise<string | undefined> {
    try {
      await store.put('k', value);
      return (await store.get('k'))?.value;
    } finally {
      await store.close();
    }
  }

  it('works with etcd_username/etcd_password', async () => {
    const store = new EtcdKvStore({
      endpoints: [etcd.endpoint],
      username: 'root',
      password: PASSWORD,
      prefix: '/auth/',
    });
    expect(await roundTrip(store, 'by-keys')).toBe('by-keys');
  });

  it('works with the URL form user:pass@', async () => {
    const url = etcd.endpoint.replace('http://', `http://root:${encodeURIComponent(PASSWORD)}@`);
    const store = new EtcdKvStore({ endpoints: [url], prefix: '/auth/' });
    expect(await roundTrip(store, 'by-url')).toBe('by-url');
  });

  it.each([
    ['no credentials', {}],
    ['a wrong password', { username: 'root', password: 'wrong' }],
  ])('fails with %s, and the error has no password in it', async (_, cred) => {
    const store = new EtcdKvStore({
      endpoints: [etcd.endpoint],
      requestTimeoutMs: 2000,
      prefix: '/auth/',
      ...cred,
    });
    let msg = '';
    try {
      await store.get('k');
    } catch (err) {
      msg = (err as Error).message;
    } finally {
      await store.close();
    }
    expect(msg).not.toBe('');
    expect(msg).not.toContain(PASSWORD);
    expect(msg).not.toContain('wrong');
  });
});
