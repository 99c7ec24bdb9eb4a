/** The reboot lock suite (test/support/lock-contract.ts) against a real single-member etcd (v3 txns). */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe } from 'vitest';
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
  lockContract('etcd, 1 member', () =>
    Promise.resolve(
      new EtcdKvStore({ endpoints: [etcd!.endpoint], prefix: `/flotilla-test/${randomUUID()}/` }),
    ),
  );
});
